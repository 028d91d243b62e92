#!/usr/bin/env node
import { UsageError } from './args.js';

const HELP = `lazy-content: serve a repository of files lazily.

Usage: lazy-content <command> [options]

Commands:
  serve          a standalone server: the content side, the streamer and the save worker
  import URL     import a repository (Pulp file or yum) into the catalog
  worker         run a save worker
  catalog ls     list catalog entries
  queue ls       list save tasks          queue retry PATH   retry a failed save
  cache ls       list cached files        cache gc           remove leftovers of crashed downloads and saves

Every command takes --data-dir, --database and --redis, and --help. Every option can also be given as an
environment variable: --data-dir as LAZY_CONTENT_DATA_DIR, --port as LAZY_CONTENT_PORT, and so on.`;

type Command = (argv: string[]) => Promise<number | void>;

// Loaded on demand: `--help` and a mistyped option should not wait for the database and Redis libraries.
const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.js')).serveCommand,
  worker: async () => (await import('./serve.js')).workerCommand,
  import: async () => (await import('./import.js')).importCommand,
  catalog: async () => (await import('./admin.js')).catalogCommand,
  queue: async () => (await import('./admin.js')).queueCommand,
  cache: async () => (await import('./admin.js')).cacheCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${HELP}\n`);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (!load) throw new UsageError(`unknown command "${name}" (see lazy-content --help)`);
  const command = await load();
  return (await command(rest)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`lazy-content: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`lazy-content: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
