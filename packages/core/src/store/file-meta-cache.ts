import etag from 'etag';
import { LRUCache } from 'lru-cache';
import mime from 'mime-types';
import type { ContentStore, StoredFileInfo } from './content-store.js';

/** Everything the HTTP layer needs to answer for a saved file without touching the disk again. */
export interface FileMeta {
  key: string;
  info: StoredFileInfo;
  etag: string;
  lastModified: string;
  contentType: string;
  /** The whole file, for files small enough to keep in memory. */
  body?: Buffer | undefined;
}

interface Entry {
  /** null: the store had no such file when it was checked. */
  meta: FileMeta | null;
  checkedAt: number;
}

export interface FileMetaCacheOptions {
  /** How long a stat result is believed before the file is looked at again. */
  ttlMs: number;
  maxEntries: number;
  /** Total bytes of small-file bodies kept in memory. */
  memoryBytes: number;
  /** Largest file kept in memory. */
  memoryFileBytes: number;
}

export function contentTypeFor(key: string): string {
  return mime.contentType(key.slice(key.lastIndexOf('/') + 1)) || 'application/octet-stream';
}

export function metaFor(key: string, info: StoredFileInfo, body?: Buffer): FileMeta {
  return {
    key,
    info,
    // Size and modification time, not the version (which names the inode): a file saved from the cache keeps
    // its modification time, so its ETag stays the same when it moves from the cache into the store.
    etag: etag(`${info.size}-${Math.floor(info.mtimeMs)}`),
    lastModified: new Date(Math.floor(info.mtimeMs)).toUTCString(),
    contentType: contentTypeFor(key),
    body,
  };
}

/**
 * What a saved-content request does on every hit (stat, ETag, Last-Modified, type, and for small files the
 * bytes) is remembered for `ttlMs`. After that one `stat` revalidates it; a changed `version` drops it.
 * That a file is absent is remembered for `ttlMs` too (a put or `invalidate` through this process forgets it
 * at once). Concurrent misses for one key share one lookup.
 */
export class FileMetaCache {
  private readonly entries: LRUCache<string, Entry>;
  private readonly bodies: LRUCache<string, Buffer>;
  private readonly inflight = new Map<string, Promise<FileMeta | null>>();
  /** Bumped by every invalidation, so that a stat begun before one does not record the file as absent. */
  private generation = 0;

  constructor(
    private readonly store: ContentStore,
    private readonly options: FileMetaCacheOptions,
  ) {
    this.entries = new LRUCache({ max: Math.max(1, options.maxEntries) });
    this.bodies = new LRUCache({
      maxSize: Math.max(1, options.memoryBytes),
      sizeCalculation: (b) => Math.max(1, b.length),
    });
  }

  /** Metadata for a saved file, or null when the store has none. */
  get(key: string, now = Date.now()): Promise<FileMeta | null> {
    const entry = this.entries.get(key);
    if (entry && now - entry.checkedAt < this.options.ttlMs) {
      // An absent file is remembered too: a burst of clients asking for a file that is not saved yet (each
      // one redirected, then streamed) costs one stat, not one or two each on a busy thread pool.
      return Promise.resolve(entry.meta === null ? null : this.withBody(entry.meta));
    }
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.load(key, entry).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /** Forget what is known of `key` (after a put or delete through this process). */
  invalidate(key: string): void {
    this.generation++;
    this.forget(key);
  }

  private forget(key: string): void {
    const entry = this.entries.get(key);
    if (entry?.meta) this.bodies.delete(entry.meta.info.version);
    this.entries.delete(key);
  }

  /** Replace what is known of `key` with a version seen by a reader that had the file open. */
  remember(key: string, info: StoredFileInfo): FileMeta {
    const meta = metaFor(key, info);
    this.entries.set(key, { meta, checkedAt: Date.now() });
    return meta;
  }

  clear(): void {
    this.entries.clear();
    this.bodies.clear();
  }

  private withBody(meta: FileMeta): FileMeta {
    if (meta.info.size > this.options.memoryFileBytes || this.options.memoryBytes === 0) return meta;
    const body = this.bodies.get(meta.info.version);
    return body === meta.body ? meta : { ...meta, body };
  }

  private async load(key: string, previous: Entry | undefined): Promise<FileMeta | null> {
    const small = (size: number) => size <= this.options.memoryFileBytes && this.options.memoryBytes > 0;
    const generation = this.generation;
    const info = await this.store.stat(key);
    if (!info) {
      this.forget(key);
      // Unless the file was put or invalidated meanwhile, in which case the next request looks again.
      if (this.options.ttlMs > 0 && generation === this.generation) this.entries.set(key, { meta: null, checkedAt: Date.now() });
      return null;
    }
    const known = previous?.meta;
    if (known && known.info.version === info.version) {
      previous!.checkedAt = Date.now();
      return this.withBody(known);
    }
    if (known) this.bodies.delete(known.info.version);
    if (!small(info.size)) {
      return this.remember(key, info);
    }
    // Read through an open handle so that the bytes and the info are one version.
    const opened = await this.store.open(key);
    if (!opened) {
      this.forget(key);
      return null;
    }
    try {
      if (!small(opened.info.size)) return this.remember(key, opened.info);
      const body = await opened.readAll();
      const meta = metaFor(key, opened.info);
      this.entries.set(key, { meta, checkedAt: Date.now() });
      this.bodies.set(opened.info.version, body);
      return { ...meta, body };
    } finally {
      await opened.close();
    }
  }
}
