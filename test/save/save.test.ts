import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LazyContentOptions, SaveTask } from '@lazy-content/core';
import { lazyContent, type LazyContentHandler } from '@lazy-content/express';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { BullMqSaveQueue } from '@lazy-content/core';
import { REDIS_URL, postgresAvailable, postgresSchema, redisAvailable } from '../helpers/services.js';
import { type FaultServer, startFaultServer } from '../upstream/fault-server.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const here = path.dirname(fileURLToPath(import.meta.url));

/** A queue backend for the suite: extra options, or null when its service is not reachable. */
type Backend = () => Promise<{
  options: Partial<LazyContentOptions>;
  /** For the crash test's child processes: a BullMQ prefix to build the same queue from (JSON can't carry it). */
  bullmqPrefix?: string;
  /** A database of its own, for a test that must not share tasks with the suite's worker. */
  another(dir: string): Promise<{ database: string; cleanup(): Promise<void> }>;
  cleanup(): Promise<void>;
} | null>;

export const saveBackends: Array<[string, Backend]> = [
  [
    'database queue on SQLite',
    async () => ({
      options: {},
      another: async (dir) => ({ database: path.join(dir, 'catalog.sqlite'), cleanup: async () => {} }),
      cleanup: async () => {},
    }),
  ],
  [
    'database queue on PostgreSQL',
    async () => {
      if (!(await postgresAvailable())) return null;
      const s = await postgresSchema('save');
      return {
        options: { catalog: { database: s.url } },
        another: async () => {
          const other = await postgresSchema('crash');
          return { database: other.url, cleanup: other.drop };
        },
        cleanup: s.drop,
      };
    },
  ],
  [
    'BullMQ queue on Redis',
    async () => {
      if (!(await redisAvailable())) return null;
      const prefix = `lc-test-save-${randomBytes(4).toString('hex')}`;
      const queue = new BullMqSaveQueue({ connection: REDIS_URL, prefix });
      return {
        options: { save: { queue } },
        bullmqPrefix: prefix,
        another: async (dir) => ({ database: path.join(dir, 'catalog.sqlite'), cleanup: async () => {} }),
        cleanup: () => queue.close(),
      };
    },
  ],
];

/** Waits (bounded) until `check` is true, looking every 50 ms. */
async function until(check: () => Promise<boolean>, what: string, tries = 400): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting: ${what}`);
}

for (const [name, backend] of saveBackends) {
  describe(`saving: ${name}`, () => {
    let env: Awaited<ReturnType<Backend>>;
    let dir: string;
    let upstream: FaultServer;
    let handler: LazyContentHandler;
    let server: http.Server;
    let base: string;
    let options: LazyContentOptions;

    beforeAll(async () => {
      env = await backend();
      if (!env) return;
      dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-save-'));
      upstream = await startFaultServer();
      options = {
        root: path.join(dir, 'content'),
        dataDir: path.join(dir, 'data'),
        logger: false,
        ...env.options,
        save: { pollMs: 50, backoffMs: 50, maxAttempts: 2, leaseMs: 2000, ...env.options.save },
      };
      handler = lazyContent(options);
      const catalog = await handler.lazyContent.catalog();
      for (const policy of ['on_demand', 'streamed', 'background', 'immediate'] as const) await catalog.addRemote({ name: policy, policy });
      server = http.createServer(express().use(handler));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      if (!env) return;
      server.closeAllConnections();
      server.close();
      await handler.close();
      await upstream.close();
      await env.cleanup();
      await fsp.rm(dir, { recursive: true, force: true });
    });

    const t = (title: string, fn: () => Promise<void>) =>
      // A bound for a loaded machine (the crash test waits for a lease to run out and a throttled download).
      it(title, { timeout: 90_000 }, async (ctx) => {
        if (!env) ctx.skip();
        await fn();
      });

    /** A file upstream and its catalog entry. */
    function entry(name: string, remote: string, data: Buffer, query = '') {
      upstream.put(`/up/${name}`, data);
      return { path: `repo/${name}`, remote, url: `${upstream.origin}/up/${name}${query}`, size: data.length, digest: sha256(data) };
    }

    async function follow(p: string): Promise<{ redirected: boolean; status: number; body: Buffer }> {
      const first = await request(base, p);
      if (first.status !== 302) return { redirected: false, status: first.status, body: first.body };
      const loc = new URL(first.headers.location!, base);
      const r = await request(base, loc.pathname + loc.search);
      return { redirected: true, status: r.status, body: r.body };
    }

    async function tasksOf(p: string): Promise<SaveTask[]> {
      return (await (await handler.lazyContent.saveQueue()).list({ limit: 1000 })).filter((t) => t.path === p);
    }

    const inStore = (p: string) => fsp.readFile(path.join(dir, 'content', p)).catch(() => null);

    t('on_demand: streamed first, then saved, then served from the store without redirect or upstream', async () => {
      const data = randomBytes(2 * MiB);
      const catalog = await handler.lazyContent.catalog();
      await catalog.addEntries([entry('demand.bin', 'on_demand', data)]);
      const worker = await handler.lazyContent.saveWorker();
      const saved = new Promise<void>((resolve) => {
        const onSaved = (e: { path: string }) => {
          if (e.path !== 'repo/demand.bin') return;
          worker.off('save:completed', onSaved);
          resolve();
        };
        worker.on('save:completed', onSaved);
      });
      const first = await follow('/content/repo/demand.bin');
      expect(first.redirected).toBe(true);
      expect(sha256(first.body)).toBe(sha256(data));
      await saved;
      expect(sha256((await inStore('repo/demand.bin'))!)).toBe(sha256(data));
      const later = await follow('/content/repo/demand.bin');
      expect(later.redirected).toBe(false);
      expect(later.status).toBe(200);
      expect(sha256(later.body)).toBe(sha256(data));
      expect(upstream.requests('/up/demand.bin')).toBe(1);
      expect((await catalog.lookup('repo/demand.bin'))[0]?.savedAt).not.toBeNull();
      expect(handler.lazyContent.fills.cache.lookup('repo/demand.bin')).toBeNull();
      // Nothing left to do for it (the BullMQ queue removes done tasks; the database keeps them as 'done').
      expect((await tasksOf('repo/demand.bin')).every((x) => x.state === 'done')).toBe(true);
    });

    t('streamed: cached and served again from the cache, never saved', async () => {
      const data = randomBytes(MiB);
      await (await handler.lazyContent.catalog()).addEntries([entry('stream-only.bin', 'streamed', data)]);
      const completed = once(handler.lazyContent.fills, 'fill:completed');
      expect(sha256((await follow('/content/repo/stream-only.bin')).body)).toBe(sha256(data));
      await completed;
      const again = await follow('/content/repo/stream-only.bin');
      expect(again.redirected).toBe(true);
      expect(sha256(again.body)).toBe(sha256(data));
      expect(upstream.requests('/up/stream-only.bin')).toBe(1);
      expect(await tasksOf('repo/stream-only.bin')).toEqual([]);
      expect(await inStore('repo/stream-only.bin')).toBeNull();
    });

    t('background: an import schedules every file, saved without any client', async () => {
      const a = randomBytes(MiB);
      const b = randomBytes(MiB + 3);
      const progress = await handler.lazyContent.importEntries([entry('bg-a.bin', 'background', a), entry('bg-b.bin', 'background', b)]);
      expect(progress).toMatchObject({ entries: 2, scheduled: 2, toDownload: 0 });
      await until(async () => (await inStore('repo/bg-a.bin')) !== null && (await inStore('repo/bg-b.bin')) !== null, 'background saves');
      const r = await follow('/content/repo/bg-b.bin');
      expect(r.redirected).toBe(false);
      expect(sha256(r.body)).toBe(sha256(b));
      expect(upstream.requests('/up/bg-a.bin')).toBe(1);
    });

    t('immediate: the import itself downloads and verifies every file, reporting progress', async () => {
      const files = [randomBytes(MiB), randomBytes(MiB), randomBytes(10)];
      const seen: number[] = [];
      const progress = await handler.lazyContent.importEntries(
        files.map((d, i) => entry(`now-${i}.bin`, 'immediate', d)),
        { onProgress: (p) => seen.push(p.saved + p.failed) },
      );
      expect(progress).toMatchObject({ entries: 3, toDownload: 3, saved: 3, failed: 0 });
      expect(seen[0]).toBe(0);
      expect(seen.at(-1)).toBe(3);
      for (const [i, d] of files.entries()) expect(sha256((await inStore(`repo/now-${i}.bin`))!)).toBe(sha256(d));
      // Importing again downloads nothing: the files are saved.
      const again = await handler.lazyContent.importEntries(files.map((d, i) => entry(`now-${i}.bin`, 'immediate', d)));
      expect(again.toDownload).toBe(0);
    });

    t('a digest mismatch at save time leaves no file in the store; the task is retried, then failed with its error', async () => {
      const data = randomBytes(MiB);
      await handler.lazyContent.importEntries([entry('bad.bin', 'background', data, '?mode=corrupt')]);
      await until(async () => (await tasksOf('repo/bad.bin'))[0]?.state === 'failed', 'the task to fail');
      const [task] = await tasksOf('repo/bad.bin');
      expect(task?.attempts).toBe(2);
      expect(task?.lastError).toMatch(/failed verification/);
      expect(upstream.requests('/up/bad.bin')).toBe(2);
      expect(await inStore('repo/bad.bin')).toBeNull();
      // Retry through the API once the upstream is fixed.
      upstream.put('/up/bad.bin', data);
      await (await handler.lazyContent.catalog()).addEntries([entry('bad.bin', 'background', data)]);
      expect(await (await handler.lazyContent.saveQueue()).retry('repo/bad.bin')).toBe(true);
      (await handler.lazyContent.saveWorker()).wake();
      await until(async () => (await inStore('repo/bad.bin')) !== null, 'the retried save');
      expect(sha256((await inStore('repo/bad.bin'))!)).toBe(sha256(data));
    });

    t('a worker process killed (SIGKILL) mid-save: another takes the task, the store never holds a partial file', async () => {
      const data = randomBytes(4 * MiB);
      const crashDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-crash-'));
      const db = await env!.another(crashDir);
      const crashPrefix = env!.bullmqPrefix ? `${env!.bullmqPrefix}-crash` : undefined;
      const shared: LazyContentOptions & { bullmq?: { connection: string; prefix: string } } = {
        ...(crashPrefix ? { bullmq: { connection: REDIS_URL, prefix: crashPrefix } } : {}),
        root: path.join(crashDir, 'content'),
        dataDir: path.join(crashDir, 'data'),
        catalog: { database: db.database },
        save: { leaseMs: 1000, pollMs: 50, backoffMs: 50 },
      };
      // This process only schedules; the workers are child processes.
      const { bullmq, ...sharedOptions } = shared;
      const schedulerQueue = bullmq ? new BullMqSaveQueue(bullmq) : undefined;
      const scheduler = lazyContent({ ...sharedOptions, logger: false, save: { ...shared.save, worker: false, queue: schedulerQueue } });
      const children: ChildProcess[] = [];
      const startChild = async () => {
        const child = spawn(process.execPath, [path.join(here, 'worker-child.mjs'), JSON.stringify(shared)], { stdio: ['ignore', 'pipe', 'inherit'] });
        children.push(child);
        await once(child.stdout!, 'data');
        return child;
      };
      try {
        const catalog = await scheduler.lazyContent.catalog();
        if (!(await catalog.getRemote('slow'))) await catalog.addRemote({ name: 'slow', policy: 'background' });
        upstream.put('/up/crash.bin', data);
        const key = `crash-${randomBytes(4).toString('hex')}.bin`;
        await scheduler.lazyContent.importEntries([
          { path: key, remote: 'slow', url: `${upstream.origin}/up/crash.bin?mode=slow&rate=${2 * MiB}`, size: data.length, digest: sha256(data) },
        ]);
        const queue = await scheduler.lazyContent.saveQueue();
        const first = await startChild();
        await until(async () => (await queue.list({ state: 'running' })).some((x) => x.path === key), 'the first worker to take the task');
        await until(async () => upstream.requests('/up/crash.bin') >= 1, 'the download to start');
        first.kill('SIGKILL');
        await once(first, 'exit');
        expect(await fsp.readFile(path.join(shared.root!, key)).catch(() => null)).toBeNull();
        await startChild();
        await until(async () => (await fsp.stat(path.join(shared.root!, key)).catch(() => null)) !== null, 'the second worker to save', 600);
        const savedBytes = await fsp.readFile(path.join(shared.root!, key));
        expect(sha256(savedBytes)).toBe(sha256(data));
        await until(async () => (await queue.list({ limit: 1000 })).every((x) => x.path !== key || x.state === 'done'), 'the task to close');
      } finally {
        for (const c of children) c.kill('SIGKILL');
        await scheduler.close();
        await schedulerQueue?.close();
        await db.cleanup();
        await fsp.rm(crashDir, { recursive: true, force: true });
      }
    });
  });
}
