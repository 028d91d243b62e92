import type { Readable } from 'node:stream';

/** What the store knows of one saved file. */
export interface StoredFileInfo {
  size: number;
  mtimeMs: number;
  /**
   * Changes whenever the bytes may have changed (a new file replaced the old one). Used as the identity of
   * cached metadata and small bodies, and as the seed of the strong ETag.
   */
  version: string;
}

/** A saved file held open: its info and bytes are one consistent version, even if it is replaced meanwhile. */
export interface OpenedFile {
  readonly info: StoredFileInfo;
  /** Bytes `start`..`end` inclusive, as a stream that does not close the file. */
  slice(start: number, end: number): Readable;
  /** The whole file (for small files kept in memory). */
  readAll(): Promise<Buffer>;
  close(): Promise<void>;
}

export interface PutOptions {
  mtimeMs?: number;
}

export type PutSource = Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/**
 * Where saved content lives. Keys are normalised paths (`a/b/c.rpm`, see `normalizePath`); a store never
 * sees `..`, a leading slash or a NUL.
 */
export interface ContentStore {
  /** Info for a saved file, or null when there is none (missing, not a regular file, or refused). */
  stat(key: string): Promise<StoredFileInfo | null>;
  /** Opens a saved file for reading, or null when there is none. The caller must `close()` it. */
  open(key: string): Promise<OpenedFile | null>;
  /**
   * Saves bytes under `key` atomically: readers see the old file or the whole new one, never a part.
   * `mtimeMs` sets the file's modification time (a file saved from the cache keeps its Last-Modified and ETag).
   */
  put(key: string, source: PutSource, options?: PutOptions): Promise<StoredFileInfo>;
  /** Removes a saved file; false when there was none. */
  delete(key: string): Promise<boolean>;
  /** Releases resources; further calls fail. */
  close?(): Promise<void>;
}
