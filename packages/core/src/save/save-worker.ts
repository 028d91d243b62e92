import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { request } from 'undici';
import type { Catalog } from '../catalog/catalog.js';
import type { CatalogEntry, DigestAlgorithm } from '../catalog/types.js';
import { LazyContentError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { StreamerLinks } from '../signing/links.js';
import type { ContentStore } from '../store/content-store.js';
import type { FillSource } from '../streamer/fill.js';
import type { FillEngine } from '../streamer/fill-engine.js';
import type { SaveQueue, SaveTaskLease } from './save-queue.js';

/** Header on the worker's own requests to the streamer: such a request schedules no save. */
export const SAVE_MARKER_HEADER = 'x-lazy-content-save';

export interface SaveWorkerSettings {
  /** Saves at once. */
  concurrency: number;
  /** Lease of a task, renewed every third of it while the save runs, in ms. */
  leaseMs: number;
  /** Attempts before a task is `failed` for good. */
  maxAttempts: number;
  /** Wait before the second attempt, doubled for each further one (capped at one hour), in ms. */
  backoffMs: number;
  /** How often an idle worker looks for due tasks, in ms (a task scheduled in this process wakes it at once). */
  pollMs: number;
}

export interface SaveWorkerEvents {
  'save:completed': [event: { path: string; size: number; attempts: number }];
  'save:failed': [event: { path: string; error: string; attempts: number; final: boolean }];
}

export interface SaveWorkerDeps {
  queue: SaveQueue;
  catalog: Catalog;
  store: ContentStore;
  fills: FillEngine;
  /**
   * Links to a streamer to fetch through, made with its absolute URL (`StreamerLinks` with `publicUrl`);
   * without them, a file that is not in the local cache is fetched by a fill in this process.
   */
  links?: StreamerLinks | undefined;
  logger: Logger;
  /** Called once a file is in the store, so that the content side serves it from there at once. */
  onSaved?: (path: string) => void;
}

/** Where a save's bytes come from, what they must be, and what to release once they are written. */
interface Bytes {
  source: Readable;
  expected: { size: number | null; algorithm: DigestAlgorithm; digest: string | null };
  mtimeMs?: number;
  release?: () => Promise<void>;
}

class Verifier extends Transform {
  private readonly hash;
  private bytes = 0;

  constructor(
    private readonly expectedSize: number | null,
    private readonly algorithm: DigestAlgorithm,
    private readonly expectedDigest: string | null,
  ) {
    super();
    this.hash = createHash(algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.expectedSize !== null && this.bytes > this.expectedSize) {
      callback(new Error(`size mismatch: more than the expected ${this.expectedSize} bytes`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.expectedSize !== null && this.bytes !== this.expectedSize) {
      callback(new Error(`size mismatch: ${this.bytes} bytes, expected ${this.expectedSize}`));
      return;
    }
    const digest = this.hash.digest('hex');
    if (this.expectedDigest !== null && digest !== this.expectedDigest) {
      callback(new Error(`${this.algorithm} digest mismatch`));
      return;
    }
    callback();
  }
}

/**
 * Seed steps 15 to 18: takes save tasks under a lease, gets the file's bytes (from the local cache when it
 * holds the file, else through the streamer like a client, else by a fill in this process), verifies size
 * and digest while writing, puts the file in the content store atomically, marks it saved, and drops it
 * from the cache. A crash at any point leaves no partial file in the store, and the task's lease runs out so
 * that another worker takes it again.
 */
export class SaveWorker extends EventEmitter<SaveWorkerEvents> {
  readonly owner = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private running = 0;
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private readonly active = new Set<Promise<void>>();
  private pumping = false;

  constructor(
    private readonly deps: SaveWorkerDeps,
    private readonly settings: SaveWorkerSettings,
  ) {
    super();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.wake();
  }

  /** Stops taking tasks and waits for the saves in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.allSettled([...this.active]);
  }

  /** Looks for due tasks now (a task was just scheduled). */
  wake(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.stopped && this.running < this.settings.concurrency) {
        let lease: SaveTaskLease | null;
        try {
          lease = await this.deps.queue.take(this.owner, this.settings.leaseMs);
        } catch (err) {
          this.deps.logger.warn({ err }, 'save queue unavailable; trying again later');
          break;
        }
        if (!lease) break;
        this.running++;
        const job = this.run(lease).finally(() => {
          this.running--;
          this.active.delete(job);
          this.wake();
        });
        this.active.add(job);
      }
    } finally {
      this.pumping = false;
      if (!this.stopped) {
        clearTimeout(this.timer);
        // Not unref'd: a running worker keeps its process alive, as a listening server does, until `stop()`.
        // (A process that only saves, on the SQLite queue, has no other handle: it would exit when idle.)
        this.timer = setTimeout(() => void this.pump(), this.settings.pollMs);
      }
    }
  }

  private async run(lease: SaveTaskLease): Promise<void> {
    const { queue, logger } = this.deps;
    const { path, attempts } = lease.task;
    const abort = new AbortController();
    const renewal = setInterval(() => {
      queue.renew(lease, this.settings.leaseMs).then(
        (kept) => {
          if (!kept) abort.abort(new Error('lease lost: another worker took the task'));
        },
        (err: unknown) => logger.warn({ err, path }, 'could not renew a save lease'),
      );
    }, Math.max(100, Math.floor(this.settings.leaseMs / 3)));
    renewal.unref();
    try {
      const size = await this.save(path, abort.signal);
      if (abort.signal.aborted) return;
      await queue.complete(lease);
      this.emit('save:completed', { path, size, attempts });
    } catch (err) {
      if (abort.signal.aborted) return;
      const message = err instanceof Error ? err.message : String(err);
      const final = attempts >= this.settings.maxAttempts;
      const retryAt = final ? null : Date.now() + Math.min(this.settings.backoffMs * 2 ** (attempts - 1), 3_600_000);
      logger.warn({ path, attempts, final, error: message }, 'save failed');
      await queue.fail(lease, message, retryAt).catch((e: unknown) => logger.error({ err: e, path }, 'could not record a failed save'));
      this.emit('save:failed', { path, error: message, attempts, final });
    } finally {
      clearInterval(renewal);
    }
  }

  /**
   * Saves one file now, with the same verification, without the queue (the `immediate` policy and the
   * worker both use it). Resolves with the size saved; rejects when the file could not be saved.
   */
  async save(path: string, signal?: AbortSignal): Promise<number> {
    const entries = await this.deps.catalog.lookup(path);
    const entry = entries[0];
    if (!entry) throw new LazyContentError('NOT_FOUND', `${path} is no longer in the catalog`);
    const { source, expected, mtimeMs, release } = await this.bytesOf(path, entries, signal);
    try {
      return await this.write(path, source, expected, mtimeMs, signal);
    } finally {
      // A cached file's slice does not close the file when it ends: the file is released here, once.
      await release?.();
    }
  }

  private async write(
    path: string,
    source: Readable,
    expected: { size: number | null; algorithm: DigestAlgorithm; digest: string | null },
    mtimeMs: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    const { catalog, store, fills } = this.deps;
    if (source.errored) throw source.errored;
    const verifier = new Verifier(expected.size, expected.algorithm, expected.digest);
    // put() attaches its own listeners only after it has prepared the temp file; until then an error must
    // not go unheard. pipe() does not pass errors on: a failing source must fail the verifier, or put()
    // would wait forever.
    verifier.on('error', () => undefined);
    source.on('error', (err) => verifier.destroy(err));
    signal?.addEventListener('abort', () => source.destroy(signal.reason as Error), { once: true });
    let info;
    try {
      info = await store.put(path, source.pipe(verifier), { mtimeMs });
    } catch (err) {
      source.destroy();
      // A copy in the cache that fails verification is dropped, so that the next attempt fetches anew.
      if (fills.cache.lookup(path)) await fills.cache.delete(path).catch(() => undefined);
      throw err;
    }
    await catalog.markSaved(path);
    this.deps.onSaved?.(path);
    await fills.cache.delete(path).catch(() => undefined);
    return info.size;
  }

  /**
   * Sources are made here and wired in `save` a few ticks later; one that fails in between must neither
   * crash the process (an 'error' with no listener) nor go unnoticed (`save` checks `errored`).
   */
  private async bytesOf(
    path: string,
    entries: CatalogEntry[],
    signal: AbortSignal | undefined,
  ): Promise<Bytes> {
    const found = await this.findBytes(path, entries, signal);
    found.source.on('error', () => undefined);
    return found;
  }

  private async findBytes(path: string, entries: CatalogEntry[], signal: AbortSignal | undefined): Promise<Bytes> {
    const { fills, catalog, links } = this.deps;
    const entry = entries[0]!;
    const fromCatalog = { size: entry.size, algorithm: entry.digestAlgorithm ?? 'sha256', digest: entry.digest };
    const cached = await fills.cache.open(path);
    if (cached) {
      const r = cached.record;
      const source = cached.info.size === 0 ? Readable.from([]) : cached.slice(0, cached.info.size - 1);
      // The catalog's expectations when it has them, else what the fill computed while downloading.
      const expected = entry.digest ? fromCatalog : { size: entry.size ?? r.size, algorithm: r.digestAlgorithm, digest: r.digest };
      return { source, expected, mtimeMs: cached.info.mtimeMs, release: () => cached.close() };
    }
    if (links) {
      // `links` points at the streamer's public URL: fetch like a client, marked so that it schedules nothing.
      const res = await request(links.create(path, undefined), { headers: { [SAVE_MARKER_HEADER]: '1' }, signal });
      if (res.statusCode !== 200) {
        res.body.destroy();
        throw new Error(`the streamer answered ${res.statusCode}`);
      }
      return { source: res.body as unknown as Readable, expected: fromCatalog };
    }
    const sources: FillSource[] = [];
    for (const e of entries) {
      const remote = await catalog.remoteById(e.remoteId);
      if (remote) sources.push({ entry: e, remote });
    }
    if (sources.length === 0) throw new LazyContentError('NOT_FOUND', `${path} has no remote left`);
    const acquired = await fills.open(path, sources);
    if (acquired.kind === 'cached') {
      const file = acquired.file;
      const source = file.info.size === 0 ? Readable.from([]) : file.slice(0, file.info.size - 1);
      return { source, expected: fromCatalog, mtimeMs: file.info.mtimeMs, release: () => file.close() };
    }
    await acquired.fill.head;
    return { source: acquired.fill.createReader(), expected: fromCatalog };
  }
}
