import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { FsContentStore } from '../store/fs-store.js';
import type { SaveTaskState } from '../save/save-queue.js';
import { int, parse, str, UsageError } from './args.js';
import { adminInstance, commonOptions, helpOf } from './common.js';
import type { LazyContent } from '../lazy-content.js';

async function withInstance<T>(values: Record<string, unknown>, fn: (lc: LazyContent) => Promise<T>): Promise<T> {
  const instance = await adminInstance(values);
  try {
    return await fn(instance.lc);
  } finally {
    await instance.close();
  }
}

const when = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : '-');

const CATALOG_HELP = helpOf(
  'catalog ls [--prefix P] [--limit N]',
  `  --prefix P         entries below this path (below the content prefix), e.g. demo-file/
  --limit N          at most N entries                                     [100]`,
);

export async function catalogCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'ls') {
    if (sub === '--help' || sub === '-h') return (process.stdout.write(CATALOG_HELP), 0);
    throw new UsageError(sub === undefined ? 'catalog needs a subcommand: ls' : `unknown catalog subcommand "${sub}" (ls)`);
  }
  const { values } = parse(rest, { ...commonOptions, prefix: { type: 'string' }, limit: { type: 'string' } });
  if (values.help) return (process.stdout.write(CATALOG_HELP), 0);
  const limit = int(values, 'limit', 100, 1, 10_000);
  await withInstance(values, async (lc) => {
    const catalog = await lc.catalog();
    const entries = await catalog.listEntries({ prefix: str(values, 'prefix'), limit });
    process.stdout.write('PATH\tREMOTE\tSIZE\tDIGEST\tSAVED\n');
    for (const e of entries) {
      const digest = e.digest ? `${e.digestAlgorithm}:${e.digest.slice(0, 16)}…` : '-';
      process.stdout.write(`${e.path}\t${e.remote}\t${e.size ?? '-'}\t${digest}\t${e.savedAt ? e.savedAt.toISOString() : '-'}\n`);
    }
    process.stdout.write(`${entries.length} of ${await catalog.countEntries()} entries\n`);
  });
  return 0;
}

const QUEUE_HELP = helpOf(
  'queue ls [--state S] [--limit N] | queue retry PATH',
  `  --state S          pending, running, done or failed
  --limit N          at most N tasks                                       [100]`,
);

export async function queueCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') return (process.stdout.write(QUEUE_HELP), 0);
  if (sub === 'ls') {
    const { values } = parse(rest, { ...commonOptions, state: { type: 'string' }, limit: { type: 'string' } });
    if (values.help) return (process.stdout.write(QUEUE_HELP), 0);
    const state = str(values, 'state');
    if (state !== undefined && !['pending', 'running', 'done', 'failed'].includes(state)) {
      throw new UsageError(`--state must be pending, running, done or failed (got "${state}")`);
    }
    await withInstance(values, async (lc) => {
      const tasks = await (await lc.saveQueue()).list({ state: state as SaveTaskState | undefined, limit: int(values, 'limit', 100, 1, 10_000) });
      process.stdout.write('PATH\tSTATE\tATTEMPTS\tNEXT\tLAST ERROR\n');
      for (const t of tasks) process.stdout.write(`${t.path}\t${t.state}\t${t.attempts}\t${when(t.nextAttemptAt)}\t${t.lastError ?? '-'}\n`);
      process.stdout.write(`${tasks.length} tasks\n`);
    });
    return 0;
  }
  if (sub === 'retry') {
    const { values, positionals } = parse(rest, commonOptions, 1);
    if (values.help) return (process.stdout.write(QUEUE_HELP), 0);
    const target = positionals[0];
    if (!target) throw new UsageError('queue retry needs the PATH of a failed save');
    const retried = await withInstance(values, async (lc) => (await lc.saveQueue()).retry(target.replace(/^\/+/, '')));
    if (!retried) {
      process.stderr.write(`lazy-content: no failed save of ${target}\n`);
      return 1;
    }
    process.stdout.write(`${target}: pending again\n`);
    return 0;
  }
  throw new UsageError(sub === undefined ? 'queue needs a subcommand: ls or retry' : `unknown queue subcommand "${sub}" (ls, retry)`);
}

const CACHE_HELP = helpOf(
  'cache ls | cache gc [--older-than SECONDS]',
  `  --older-than S     gc: leftovers older than this are removed             [3600]`,
);

async function* walk(dir: string): AsyncGenerator<{ file: string; size: number; mtimeMs: number }> {
  let names;
  try {
    names = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const d of names) {
    const full = path.join(dir, d.name);
    if (d.isDirectory()) yield* walk(full);
    else if (d.isFile()) {
      const st = await fsp.stat(full).catch(() => null);
      if (st) yield { file: full, size: st.size, mtimeMs: st.mtimeMs };
    }
  }
}

/**
 * Reads the cache folder only: it never opens the cache's index, because initialising a cache removes
 * files its index does not know, and a running server's index is not this process's.
 */
export async function cacheCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') return (process.stdout.write(CACHE_HELP), 0);
  if (sub !== 'ls' && sub !== 'gc') throw new UsageError(sub === undefined ? 'cache needs a subcommand: ls or gc' : `unknown cache subcommand "${sub}" (ls, gc)`);
  const { values } = parse(rest, { ...commonOptions, 'older-than': { type: 'string' } });
  if (values.help) return (process.stdout.write(CACHE_HELP), 0);
  const dataDir = path.resolve(str(values, 'data-dir') ?? './.lazy-content');
  const filesDir = path.join(dataDir, 'cache', 'files');
  if (sub === 'ls') {
    let count = 0;
    let bytes = 0;
    process.stdout.write('PATH\tSIZE\tCACHED\n');
    for await (const f of walk(filesDir)) {
      count++;
      bytes += f.size;
      process.stdout.write(`${path.relative(filesDir, f.file)}\t${f.size}\t${when(f.mtimeMs)}\n`);
    }
    process.stdout.write(`${count} files, ${bytes} bytes\n`);
    return 0;
  }
  const cutoff = Date.now() - int(values, 'older-than', 3600, 0) * 1000;
  let removed = 0;
  for await (const f of walk(path.join(dataDir, 'cache', 'tmp'))) {
    if (f.mtimeMs < cutoff) {
      await fsp.rm(f.file, { force: true });
      removed++;
    }
  }
  removed += await new FsContentStore(path.join(dataDir, 'content')).sweepTemporaryFiles(Date.now() - cutoff);
  process.stdout.write(`${removed} leftover files removed\n`);
  return 0;
}
