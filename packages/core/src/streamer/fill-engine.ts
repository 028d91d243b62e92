import { EventEmitter } from 'node:events';
import { type CachedFile, checkKey, type DiskCache } from '../cache/disk-cache.js';
import { LazyContentError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { SourceCooldowns } from './cooldown.js';
import type { EmitFillEvent, FillEngineEvents } from './events.js';
import { Fill, type FillSettings, type FillSource } from './fill.js';
import { UpstreamClients } from './upstream.js';

export interface FillEngineOptions {
  /** Where downloads are written and finished files kept. Call its `init()` before the first fill. */
  cache: DiskCache;
  /** @default silentLogger */
  logger?: Logger;
  /** How long a failed source is skipped while another source of the file remains, in ms. @default 60000 */
  cooldownMs?: number;
  /**
   * Bytes at the end of a file held back from readers until size and digest are verified, so that no client
   * ever holds a complete-looking corrupt file. @default 65536 (64 KiB)
   */
  holdbackBytes?: number;
  /** Bytes per read of a reader, which is also what one reader holds in memory. @default 524288 (512 KiB) */
  readChunkBytes?: number;
  /**
   * Bytes of each download kept in memory behind the newest byte readers may read (plus what arrived since),
   * from which readers that follow the download are served (shared, without reading the file back, in blocks
   * of `readChunkBytes`); readers further behind read from disk. Per running fill, whatever the file's size
   * and the number of readers. 0 serves every reader from disk. @default 8388608 (8 MiB)
   */
  memoryWindowBytes?: number;
  /**
   * Redirects followed from an upstream (CDNs redirect to mirrors). Authorization is dropped on a redirect to
   * another origin; the remote's extra headers and client certificate are not. 0 treats a 3xx as a failure.
   * @default 5
   */
  maxRedirections?: number;
  /** `User-Agent` sent upstream. @default 'lazy-content' */
  userAgent?: string;
  /** The clock of cooldowns (tests). @default Date.now */
  now?: () => number;
}

export const fillEngineDefaults = {
  logger: silentLogger,
  cooldownMs: 60_000,
  holdbackBytes: 64 * 1024,
  readChunkBytes: 512 * 1024,
  memoryWindowBytes: 8 * 1024 * 1024,
  maxRedirections: 5,
  userAgent: 'lazy-content',
  now: Date.now,
} satisfies Required<Omit<FillEngineOptions, 'cache'>>;

/** What `open` found: the file in the cache, or a fill to read it from (running, or just started). */
export type Acquired =
  | { kind: 'cached'; file: CachedFile }
  | { kind: 'fill'; fill: Fill; /** True when the fill was already running (coalesced). */ joined: boolean };

/**
 * Runs fills: at most one per file key at a time in this process. A request for a file being downloaded
 * joins its fill; a request for a cached file gets the cached file; otherwise a fill starts. Emits
 * `FillEngineEvents` for logs and metrics, and `fill:completed` for the save queue.
 */
export class FillEngine extends EventEmitter<FillEngineEvents> {
  readonly cache: DiskCache;
  readonly cooldowns: SourceCooldowns;
  private readonly logger: Logger;
  private readonly clients: UpstreamClients;
  private readonly settings: FillSettings;
  private readonly fills = new Map<string, Fill>();
  private closed = false;

  constructor(options: FillEngineOptions) {
    super();
    const o = {
      logger: options.logger ?? fillEngineDefaults.logger,
      cooldownMs: options.cooldownMs ?? fillEngineDefaults.cooldownMs,
      holdbackBytes: options.holdbackBytes ?? fillEngineDefaults.holdbackBytes,
      readChunkBytes: options.readChunkBytes ?? fillEngineDefaults.readChunkBytes,
      memoryWindowBytes: options.memoryWindowBytes ?? fillEngineDefaults.memoryWindowBytes,
      maxRedirections: options.maxRedirections ?? fillEngineDefaults.maxRedirections,
      userAgent: options.userAgent ?? fillEngineDefaults.userAgent,
      now: options.now ?? fillEngineDefaults.now,
    };
    if (!(o.readChunkBytes >= 4096)) throw new RangeError('readChunkBytes must be at least 4096');
    if (!(o.holdbackBytes >= 1)) throw new RangeError('holdbackBytes must be at least 1');
    if (!(Number.isInteger(o.memoryWindowBytes) && o.memoryWindowBytes >= 0)) throw new RangeError('memoryWindowBytes must be a whole number of at least 0');
    this.cache = options.cache;
    this.logger = o.logger;
    this.cooldowns = new SourceCooldowns(o.cooldownMs, o.now);
    this.clients = new UpstreamClients(o.maxRedirections);
    this.settings = {
      holdbackBytes: o.holdbackBytes,
      readChunkBytes: o.readChunkBytes,
      memoryWindowBytes: o.memoryWindowBytes,
      userAgent: o.userAgent,
    };
  }

  /** The running fill of `key`, if any. */
  running(key: string): Fill | undefined {
    return this.fills.get(key);
  }

  /** Number of fills running. */
  get activeFills(): number {
    return this.fills.size;
  }

  /**
   * The cached file of `key`, else its running fill, else a new fill from `sources` (tried in the order
   * given: the catalog's order of priority, then id). The caller must `close()` a cached file.
   */
  async open(key: string, sources: readonly FillSource[]): Promise<Acquired> {
    const running = this.fills.get(key);
    if (running?.state === 'committing') {
      // Verified and moving into the cache (an fsync and a rename): wait for it, so that the answer comes
      // from the cache with its validators, as it will for every later request.
      const cached = await running.done.then(
        () => this.cache.open(key),
        () => null,
      );
      if (cached) return { kind: 'cached', file: cached };
    }
    if (running && this.fills.get(key) === running) return { kind: 'fill', fill: this.join(running), joined: true };
    const file = await this.cache.open(key);
    if (file) return { kind: 'cached', file };
    // Checked again: another request may have started the fill while the cache was looked at.
    const joined = this.fills.has(key);
    return { kind: 'fill', fill: this.fill(key, sources), joined };
  }

  /**
   * The running fill of `key`, or a new one from `sources` (without looking at the cache). Throws a
   * TypeError for a key that is not normalised or an empty `sources`, and UNAVAILABLE after `close()`.
   */
  fill(key: string, sources: readonly FillSource[]): Fill {
    if (this.closed) throw new LazyContentError('UNAVAILABLE', 'The streamer is shutting down', { headers: { 'retry-after': '1' } });
    const running = this.fills.get(key);
    if (running) return this.join(running);
    // Refused before any byte is downloaded, rather than at the commit.
    checkKey(key);
    if (sources.length === 0) throw new TypeError(`no source for ${key}`);
    // EventEmitter's typing cannot relate a generic name to its argument tuple; EmitFillEvent keeps callers typed.
    const emit: EmitFillEvent = (name, ...args) => (this.emit as (name: string, ...args: unknown[]) => boolean)(name, ...args);
    const fill = new Fill(key, sources, {
      cache: this.cache,
      clients: this.clients,
      cooldowns: this.cooldowns,
      logger: this.logger,
      emit,
      settings: this.settings,
      onSettled: (settled) => {
        if (this.fills.get(key) === settled) this.fills.delete(key);
      },
    });
    this.fills.set(key, fill);
    this.safeEmit(() => this.emit('fill:started', { key, sources: sources.length }));
    fill.start();
    return fill;
  }

  /** Aborts every running fill (their readers are destroyed) and closes upstream connections. */
  async close(): Promise<void> {
    this.closed = true;
    const running = [...this.fills.values()];
    for (const fill of running) fill.abort();
    await Promise.allSettled(running.map((f) => f.done));
    await this.clients.close();
  }

  private join(fill: Fill): Fill {
    this.safeEmit(() => this.emit('fill:joined', { key: fill.key, bytesWritten: fill.bytesWritten, readers: fill.readers }));
    return fill;
  }

  private safeEmit(emit: () => void): void {
    try {
      emit();
    } catch (err) {
      this.logger.error({ err: String(err) }, 'fill event listener threw');
    }
  }
}
