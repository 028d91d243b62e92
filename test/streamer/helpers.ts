import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import Keyv from 'keyv';
import { type CacheRecord, DiskCache, type DiskCacheOptions } from '../../packages/core/src/cache/disk-cache.js';
import type { CatalogEntry, Remote } from '../../packages/core/src/catalog/types.js';
import type { FillEngineEvents } from '../../packages/core/src/streamer/events.js';
import type { Fill, FillSource } from '../../packages/core/src/streamer/fill.js';
import { FillEngine, type FillEngineOptions } from '../../packages/core/src/streamer/fill-engine.js';

export const MiB = 1024 * 1024;

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Random bytes, so that a misplaced chunk can never go unnoticed. */
export function randomFile(size: number): Buffer {
  return randomBytes(size);
}

let nextId = 1;

export function remote(overrides: Partial<Remote> = {}): Remote {
  const id = overrides.id ?? nextId++;
  return {
    id,
    name: `remote-${id}`,
    tls: { ca: null, cert: null, key: null, verify: true },
    proxyUrl: null,
    headers: null,
    basicAuth: null,
    connectTimeoutMs: 2_000,
    headersTimeoutMs: 5_000,
    bodyIdleTimeoutMs: 5_000,
    maxConcurrentDownloads: 10,
    policy: 'on_demand',
    createdAt: new Date(0),
    updatedAt: new Date(0),
    ...overrides,
  };
}

/** A source of `key`: an entry at `url` on `remote`, with the size and sha256 of `body` unless overridden. */
export function source(
  key: string,
  url: string,
  body: Buffer | null,
  overrides: Partial<CatalogEntry> = {},
  on: Remote = remote(),
): FillSource {
  return {
    remote: on,
    entry: {
      id: nextId++,
      path: key,
      remoteId: on.id,
      url,
      size: body ? body.length : null,
      digestAlgorithm: body ? 'sha256' : null,
      digest: body ? sha256(body) : null,
      contentType: null,
      priority: 0,
      savedAt: null,
      maxAgeMs: null,
      ...overrides,
    },
  };
}

export interface Harness {
  dir: string;
  cacheDir: string;
  index: Keyv<CacheRecord>;
  cache: DiskCache;
  engine: FillEngine;
  /** Every engine event, in order. */
  events: { name: keyof FillEngineEvents; event: unknown }[];
  close(): Promise<void>;
}

export async function harness(
  engineOptions: Partial<Omit<FillEngineOptions, 'cache'>> = {},
  cacheOptions: Partial<Omit<DiskCacheOptions, 'dir' | 'index'>> = {},
): Promise<Harness> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-fill-'));
  const cacheDir = path.join(dir, 'cache');
  const index = new Keyv<CacheRecord>();
  const cache = new DiskCache({ dir: cacheDir, index, ...cacheOptions });
  await cache.init();
  const engine = new FillEngine({ cache, ...engineOptions });
  const events: Harness['events'] = [];
  const names: (keyof FillEngineEvents)[] = [
    'fill:started',
    'fill:joined',
    'fill:head',
    'fill:completed',
    'fill:failed',
    'source:failed',
    'source:cooled-down',
  ];
  for (const name of names) engine.on(name, (event: unknown) => events.push({ name, event }));
  return {
    dir,
    cacheDir,
    index,
    cache,
    engine,
    events,
    close: async () => {
      await engine.close();
      await cache.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** Files in the cache's temp folder. */
export async function tempFiles(h: Harness): Promise<string[]> {
  return fsp.readdir(path.join(h.cacheDir, 'tmp'));
}

/** Reads a stream to its end; rejects if it errors. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** What a reader saw: its bytes, and how it ended. */
export async function outcome(stream: Readable): Promise<{ bytes: number; error: Error | undefined }> {
  let bytes = 0;
  try {
    for await (const chunk of stream) bytes += (chunk as Buffer).length;
    return { bytes, error: undefined };
  } catch (err) {
    return { bytes, error: err as Error };
  }
}

/** Resolves once `predicate()` holds, checked after each progress notice of the fill's file (no timers). */
export function until(fill: Fill, predicate: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    if (predicate()) {
      resolve();
      return;
    }
    const off = fill.file.onProgress(() => {
      if (predicate()) {
        off();
        resolve();
      } else if (fill.file.state === 'failed') {
        off();
        reject(fill.file.failure);
      }
    });
  });
}

/** Lets pending I/O callbacks and microtasks run (a few turns of the event loop; not a timing assumption). */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Takes the first chunk of a stream without putting it in flowing mode; `rest()` reads the remainder. */
export async function firstChunk(stream: Readable): Promise<{ first: Buffer; rest: () => Promise<Buffer> }> {
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head = await iterator.next();
  if (head.done) throw new Error('stream ended before its first chunk');
  return {
    first: head.value,
    rest: async () => {
      const chunks: Buffer[] = [];
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) chunks.push(next.value);
      return Buffer.concat(chunks);
    },
  };
}

/** sha256 of a stream's bytes, hashed as they come (no copy of the whole file in memory). */
export async function digestOf(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
