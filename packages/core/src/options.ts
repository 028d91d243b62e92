import * as path from 'node:path';
import { z } from 'zod';
import { defaultLogger, type Logger, silentLogger } from './logger.js';
import type { ContentStore } from './store/content-store.js';

/** Tuning of the saved-content path, which runs on every request. */
export interface ServingOptions {
  /** How long a file's stat, ETag and type are believed before one `stat` checks them again, in ms. @default 1000 */
  metadataTtlMs?: number;
  /** How many files' metadata are remembered. @default 10000 */
  metadataEntries?: number;
  /** Bytes of small files kept in memory, in total; 0 turns the memory cache off. @default 67108864 (64 MiB) */
  memoryCacheBytes?: number;
  /** Largest file kept in memory, in bytes. @default 65536 (64 KiB) */
  memoryCacheFileBytes?: number;
}

export interface LazyContentOptions {
  /** URL path below which content is served (starts and ends with `/`); other requests pass through. @default '/content/' */
  prefix?: string;
  /** Folder for lazy-content's own data (catalog, cache, secrets). Created when missing. @default './.lazy-content' */
  dataDir?: string;
  /** Folder of saved content. @default '<dataDir>/content' */
  root?: string;
  /** A content store to use instead of the `root` folder. @default a FsContentStore on `root` */
  store?: ContentStore;
  /** A path below the prefix that is not there: `'respond'` answers 404, `'pass'` calls the next handler. @default 'respond' */
  notFound?: 'respond' | 'pass';
  /** Methods other than GET and HEAD below the prefix: `'reject'` answers 405 with `Allow`, `'pass'` calls the next handler. @default 'reject' */
  otherMethods?: 'reject' | 'pass';
  /** `Cache-Control` sent with files, or `false` to send none. @default 'public, max-age=0' */
  cacheControl?: string | false;
  /** A request with more ranges than this (after merging overlaps) gets the whole file as a 200. @default 16 */
  maxRanges?: number;
  /** Longest request path accepted below the prefix, in characters; longer ones get 400. @default 4096 */
  maxPathLength?: number;
  /** Caches of the saved-content path. */
  serving?: ServingOptions;
  /** Where log lines go: a pino logger or any object with debug/info/warn/error; `false` for none. @default pino to stdout */
  logger?: Logger | false;
}

export const defaults = {
  prefix: '/content/',
  dataDir: './.lazy-content',
  notFound: 'respond',
  otherMethods: 'reject',
  cacheControl: 'public, max-age=0',
  maxRanges: 16,
  maxPathLength: 4096,
  serving: {
    metadataTtlMs: 1000,
    metadataEntries: 10_000,
    memoryCacheBytes: 64 * 1024 * 1024,
    memoryCacheFileBytes: 64 * 1024,
  } satisfies Required<ServingOptions>,
} as const;

const int = (min: number, max: number, what: string) =>
  z
    .number({ error: `must be a number (${what})` })
    .int({ error: `must be a whole number (${what})` })
    .min(min, { error: `must be at least ${min} (${what})` })
    .max(max, { error: `must be at most ${max} (${what})` });

const isStore = (v: unknown): v is ContentStore =>
  typeof v === 'object' &&
  v !== null &&
  ['stat', 'open', 'put', 'delete'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');

const isLogger = (v: unknown): v is Logger =>
  typeof v === 'object' &&
  v !== null &&
  ['debug', 'info', 'warn', 'error'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');

const schema = z
  .strictObject({
    prefix: z
      .string({ error: 'must be a string such as "/content/"' })
      .regex(/^\/[^?#\\]*$/, { error: 'must be a URL path that starts with "/", such as "/content/"' })
      .default(defaults.prefix)
      .transform((p) => (p.endsWith('/') ? p : `${p}/`)),
    dataDir: z.string({ error: 'must be a folder path' }).min(1, { error: 'must not be empty' }).default(defaults.dataDir),
    root: z.string({ error: 'must be a folder path' }).min(1, { error: 'must not be empty' }).optional(),
    store: z
      .custom<ContentStore>(isStore, { error: 'must be a ContentStore (an object with stat, open, put and delete)' })
      .optional(),
    notFound: z.enum(['respond', 'pass'], { error: 'must be "respond" or "pass"' }).default(defaults.notFound),
    otherMethods: z.enum(['reject', 'pass'], { error: 'must be "reject" or "pass"' }).default(defaults.otherMethods),
    cacheControl: z
      .union([z.string().min(1), z.literal(false)], { error: 'must be a Cache-Control value or false' })
      .default(defaults.cacheControl),
    maxRanges: int(1, 1000, 'ranges per request').default(defaults.maxRanges),
    maxPathLength: int(16, 65536, 'characters').default(defaults.maxPathLength),
    serving: z
      .strictObject({
        metadataTtlMs: int(0, 86_400_000, 'milliseconds').default(defaults.serving.metadataTtlMs),
        metadataEntries: int(1, 10_000_000, 'entries').default(defaults.serving.metadataEntries),
        memoryCacheBytes: int(0, Number.MAX_SAFE_INTEGER, 'bytes').default(defaults.serving.memoryCacheBytes),
        memoryCacheFileBytes: int(0, 1024 * 1024 * 1024, 'bytes').default(defaults.serving.memoryCacheFileBytes),
      })
      .prefault({}),
    logger: z
      .union([z.custom<Logger>(isLogger), z.literal(false)], {
        error: 'must be a logger with debug, info, warn and error methods (a pino logger fits), or false',
      })
      .optional(),
  })
  .prefault({});

export interface ResolvedOptions extends Omit<z.output<typeof schema>, 'logger' | 'root'> {
  root: string;
  logger: Logger;
}

/** Thrown at start-up for options that cannot work; the message names the option and what it takes. */
export class OptionsError extends TypeError {
  override readonly name = 'OptionsError';
}

/** Validates options once and fills in defaults field by field. */
export function resolveOptions(input: LazyContentOptions | undefined): ResolvedOptions {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') {
        const where = name ? `in "${name}" ` : '';
        return `unknown option ${where}${issue.keys.map((k) => `"${k}"`).join(', ')}: check the spelling against LazyContentOptions`;
      }
      return `option "${name}" ${issue.message}`;
    });
    throw new OptionsError(`lazy-content: invalid options:\n  - ${lines.join('\n  - ')}`);
  }
  const o = result.data;
  return {
    ...o,
    root: path.resolve(o.root ?? path.join(o.dataDir, 'content')),
    dataDir: path.resolve(o.dataDir),
    logger: o.logger === false ? silentLogger : (o.logger ?? defaultLogger()),
  };
}
