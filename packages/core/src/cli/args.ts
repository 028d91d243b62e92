import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake on the command line: printed as one line, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { env?: string };

/** One option or argument as given, in order (for options that come in groups). */
export interface ArgToken {
  kind: string;
  name?: string;
  value?: string | undefined;
}

/**
 * Parses `argv` for one command. Every option can also come from an environment variable
 * (`LAZY_CONTENT_<NAME>`, `--data-dir` → `LAZY_CONTENT_DATA_DIR`); the command line wins.
 */
export function parse(argv: string[], options: Record<string, OptionSpec>, allowPositionals = 0) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, tokens: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/^.*?: /, '').replace(/\. To specify.*$/, ''));
  }
  if (parsed.positionals.length > allowPositionals) throw new UsageError(`unexpected argument "${parsed.positionals[allowPositionals]}"`);
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [name, spec] of Object.entries(options)) {
    if (values[name] !== undefined) continue;
    const env = process.env[spec.env ?? `LAZY_CONTENT_${name.toUpperCase().replace(/-/g, '_')}`];
    if (env === undefined || env === '') continue;
    if (spec.type === 'boolean') values[name] = env === '1' || env.toLowerCase() === 'true';
    else values[name] = spec.multiple ? env.split(',') : env;
  }
  return { values, positionals: parsed.positionals, tokens: (parsed.tokens ?? []) as ArgToken[] };
}

export function str(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function int(values: Record<string, unknown>, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = str(values, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max} (got "${v}")`);
  return n;
}

export function oneOf<T extends string>(values: Record<string, unknown>, name: string, allowed: readonly T[], fallback: T): T {
  const v = str(values, name) ?? fallback;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')} (got "${v}")`);
  return v as T;
}
