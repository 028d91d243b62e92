import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { LazyContentError } from '../errors.js';

/** Bytes of a file read by position; several readers may share one underlying descriptor. */
export interface PositionalFile {
  /** Reads up to `into.length` bytes at `position` into `into`; resolves with the count (0 at end of file). */
  read(into: Buffer, position: number): Promise<number>;
  /** Releases this reader's hold on the file. */
  close(): Promise<void>;
}

export type GrowingFileState = 'growing' | 'complete' | 'failed';

/**
 * A file that is being written by someone else, as its readers see it. This is the port between a fill and
 * its readers: the in-process implementation is fed by the fill's write loop; a cross-process one would be
 * fed by a channel (e.g. Redis pub/sub of `readableBytes`) and open the same file from a shared folder.
 * It is deliberately narrow: a number that only grows, a state, a notice when either changes, and a way to
 * open the bytes.
 */
export interface GrowingFileSource {
  /** Bytes on disk so far (for progress and metrics; readers use `readableBytes`). Only grows. */
  readonly writtenBytes: number;
  /**
   * Bytes that readers may read now: written to disk and not held back for verification. Only grows; equals
   * the file's size once `state` is `complete`.
   */
  readonly readableBytes: number;
  readonly state: GrowingFileState;
  /** Why the file failed, safe to show to a client; set when `state` is `failed`. */
  readonly failure: LazyContentError | undefined;
  /**
   * Calls `listener` (synchronously, no argument) after every advance of `writtenBytes` or `readableBytes`
   * and every change of `state`. Returns the function that unsubscribes.
   */
  onProgress(listener: () => void): () => void;
  /** Opens the bytes for positional reads. Rejects with `failure` if the file failed. */
  openBytes(): Promise<PositionalFile>;
  /**
   * Optional: the bytes `[position, end)` from memory, when a recent window of the download still holds them
   * all; undefined otherwise (then read them with `openBytes`). The buffers are shared with every other
   * reader and must not be modified. `end` must not exceed `readableBytes`.
   */
  recentBytes?(position: number, end: number): Buffer[] | undefined;
}

/**
 * The most a new reader sends in the turn of the event loop it starts in; what it is further behind comes a
 * turn later, after the other requests of that turn were answered (16 KiB and 64 KiB measured alike).
 */
export const FIRST_CHUNK_BYTES = 64 * 1024;

/** A chunk of the download kept in memory, at its offset in the file. */
interface WindowChunk {
  offset: number;
  bytes: Buffer;
}

/**
 * The in-process growing file: one descriptor (the fill's temp file, opened read-write) shared by the writer
 * and every reader through a reference count, so that the final rename into the cache and the unlink after a
 * failure never pull the file from under a reader that is still on it.
 */
export class LocalGrowingFile implements GrowingFileSource {
  /**
   * The most recent chunks of the download, oldest first, covering `[windowStart, windowEnd)` without gaps.
   * Readers that follow the download (the usual case: many clients asking at once) take their bytes from
   * here, shared, instead of each reading them back from disk into a buffer of their own.
   */
  private window: WindowChunk[] = [];
  private windowHead = 0;
  private windowBytes = 0;
  /** The block being filled (`blockBytes`), which is also the window's last chunk. */
  private openBlock: { block: Buffer; used: number; chunk: WindowChunk } | undefined;
  private written = 0;
  private readable = 0;
  private current: GrowingFileState = 'growing';
  private error: LazyContentError | undefined;
  private readonly listeners = new Set<() => void>();
  private handle: FileHandle | undefined;
  private readonly handleReady: Promise<FileHandle>;
  private resolveHandle!: (handle: FileHandle) => void;
  private rejectHandle!: (err: Error) => void;
  /** Holds of the shared descriptor: one for the writer until `release()`, one per open reader. */
  private holds = 1;
  private closed = false;
  private writerReleased = false;
  private readonly closedCallbacks: (() => void)[] = [];

  /**
   * @param reopen opens the finished file anew, for a reader that arrives after the shared descriptor was
   * closed (the fill completed and every earlier reader left).
   * @param maxWindowBytes how many bytes behind `readableBytes` to keep in memory for readers that follow the
   * download (at least; plus whatever was received but is not readable yet). 0 keeps none: every reader
   * reads from disk.
   * @param blockBytes when above 0, the download's chunks are copied together into blocks of this size, so that
   * a reader sends few large buffers rather than the upstream's many small ones (each is one write to its
   * socket: fifty clients of a 1 GiB file cost the JavaScript thread 25–30 CPU-s in 64 KiB chunks, 19 in
   * 512 KiB blocks). One copy per byte of the download, none per reader. 0 keeps the chunks as they come.
   */
  constructor(
    private readonly reopen?: () => Promise<PositionalFile | null>,
    private readonly maxWindowBytes = 0,
    private readonly blockBytes = 0,
  ) {
    this.handleReady = new Promise<FileHandle>((resolve, reject) => {
      this.resolveHandle = resolve;
      this.rejectHandle = reject;
    });
    // A file that fails before it was ever opened rejects `handleReady` with nobody waiting.
    this.handleReady.catch(() => undefined);
  }

  get writtenBytes(): number {
    return this.written;
  }

  get readableBytes(): number {
    return this.readable;
  }

  get state(): GrowingFileState {
    return this.current;
  }

  get failure(): LazyContentError | undefined {
    return this.error;
  }

  onProgress(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async openBytes(): Promise<PositionalFile> {
    if (this.current === 'failed') throw this.error;
    if (this.closed) {
      const again = this.reopen ? await this.reopen() : null;
      if (!again) throw new LazyContentError('UNAVAILABLE', 'The file is no longer available', { headers: { 'retry-after': '1' } });
      return again;
    }
    this.holds++;
    let handle: FileHandle;
    try {
      handle = await this.handleReady;
    } catch (err) {
      void this.drop();
      throw err;
    }
    let open = true;
    return {
      read: async (into, position) => (await handle.read(into, 0, into.length, position)).bytesRead,
      close: async () => {
        if (!open) return;
        open = false;
        await this.drop();
      },
    };
  }

  recentBytes(position: number, end: number): Buffer[] | undefined {
    if (end <= position) return [];
    const chunks = this.window;
    if (this.windowHead >= chunks.length) return undefined;
    const first = chunks[this.windowHead]!;
    if (position < first.offset) return undefined;
    const last = chunks[chunks.length - 1]!;
    if (end > last.offset + last.bytes.length) return undefined;
    // Binary search for the chunk holding `position` (readers are usually near the end, but a search is
    // cheap either way).
    let lo = this.windowHead;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (chunks[mid]!.offset <= position) lo = mid;
      else hi = mid - 1;
    }
    const out: Buffer[] = [];
    for (let i = lo; i < chunks.length; i++) {
      const { offset, bytes } = chunks[i]!;
      if (offset >= end) break;
      const from = Math.max(0, position - offset);
      const to = Math.min(bytes.length, end - offset);
      // subarray shares the memory: no copy, whatever the number of readers.
      out.push(from === 0 && to === bytes.length ? bytes : bytes.subarray(from, to));
    }
    return out;
  }

  /**
   * The writer's side: `bytes` of the download at `offset`, kept in the memory window (chunks must come in
   * order and without gaps). Call before `advance` announces them.
   */
  keep(bytes: Buffer, offset: number): void {
    if (this.maxWindowBytes === 0 || this.current !== 'growing' || bytes.length === 0) return;
    const last = this.window[this.window.length - 1];
    if (last && last.offset + last.bytes.length !== offset) {
      // Out of order (never, from a fill): start the window over rather than serve a wrong byte.
      this.dropWindow();
    }
    if (this.blockBytes === 0 || (this.openBlock === undefined && bytes.length >= this.blockBytes)) {
      this.window.push({ offset, bytes });
      this.windowBytes += bytes.length;
    } else {
      this.copyIntoBlocks(bytes, offset);
    }
    this.trimWindow();
  }

  /**
   * Copies `bytes` into the open block (the window's last chunk, a view of the part filled so far, which
   * grows), opening new blocks as they fill. Bytes already handed to readers are never written again.
   */
  private copyIntoBlocks(bytes: Buffer, offset: number): void {
    let from = 0;
    while (from < bytes.length) {
      let open = this.openBlock;
      if (open === undefined) {
        open = { block: Buffer.allocUnsafeSlow(this.blockBytes), used: 0, chunk: { offset: offset + from, bytes: Buffer.alloc(0) } };
        this.openBlock = open;
        this.window.push(open.chunk);
      }
      const n = bytes.copy(open.block, open.used, from);
      open.used += n;
      from += n;
      open.chunk.bytes = open.block.subarray(0, open.used);
      this.windowBytes += n;
      if (open.used === this.blockBytes) this.openBlock = undefined;
    }
  }

  /**
   * The window holds the last `maxWindowBytes` of what readers may read, and everything after it (received
   * but not yet on disk, or held back for verification). A chunk goes once it ends that far behind
   * `readableBytes`: it is then on disk, and a reader that needs it is a reader that fell behind. The
   * window is measured from what readers may have, not from what was received: when the disk is slow and
   * the writer's queue grows, a window measured from the received end would hold only bytes that nobody may
   * read yet and send every reader to the disk, which slows the disk further.
   */
  private trimWindow(): void {
    const chunks = this.window;
    const keepFrom = this.readable - this.maxWindowBytes;
    while (this.windowHead < chunks.length - 1) {
      const oldest = chunks[this.windowHead]!;
      if (oldest.offset + oldest.bytes.length > keepFrom) break;
      this.windowBytes -= oldest.bytes.length;
      chunks[this.windowHead] = undefined as unknown as WindowChunk;
      this.windowHead++;
    }
    // Compact now and then, so that the array does not grow with the file.
    if (this.windowHead > 1024 && this.windowHead * 2 > chunks.length) {
      this.window = chunks.slice(this.windowHead);
      this.windowHead = 0;
    }
  }

  private dropWindow(): void {
    this.openBlock = undefined;
    this.window = [];
    this.windowHead = 0;
    this.windowBytes = 0;
  }

  /** The writer's side: the descriptor every reader shares. */
  attach(handle: FileHandle): void {
    this.handle = handle;
    this.resolveHandle(handle);
  }

  /** The writer's side: `writtenBytes` are on disk, of which readers may have `readableBytes`. */
  advance(writtenBytes: number, readableBytes: number): void {
    if (this.current !== 'growing') return;
    if (writtenBytes <= this.written && readableBytes <= this.readable) return;
    this.written = Math.max(this.written, writtenBytes);
    this.readable = Math.max(this.readable, Math.min(readableBytes, this.written));
    // Chunks that are now far enough behind what readers may have go.
    if (this.windowBytes > this.maxWindowBytes) this.trimWindow();
    this.notify();
  }

  /** The writer's side: the file is whole and verified, `size` bytes. */
  complete(size: number): void {
    if (this.current !== 'growing') return;
    this.written = size;
    this.readable = size;
    this.current = 'complete';
    this.notify();
  }

  /** The writer's side: the file failed; every reader is told at once. */
  fail(error: LazyContentError): void {
    if (this.current !== 'growing') return;
    this.current = 'failed';
    this.error = error;
    this.dropWindow();
    this.rejectHandle(error);
    this.notify();
  }

  /** The writer's side: the writer is done with the descriptor (after the commit or the failure). */
  release(): void {
    if (this.writerReleased) return;
    this.writerReleased = true;
    void this.drop();
  }

  /** Calls `callback` once the shared descriptor is closed (immediately if it already is). */
  whenClosed(callback: () => void): void {
    if (this.closed) callback();
    else this.closedCallbacks.push(callback);
  }

  /** Gives up one hold; the last one closes the descriptor (and resolves once it is closed). */
  private async drop(): Promise<void> {
    this.holds--;
    if (this.holds > 0 || this.closed) return;
    this.closed = true;
    // Nobody reads any more: the memory goes, and a later reader reopens the file from the cache.
    this.dropWindow();
    if (this.handle) await this.handle.close().catch(() => undefined);
    for (const callback of this.closedCallbacks.splice(0)) callback();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export interface GrowingFileReaderOptions {
  /** First byte. @default 0 */
  start?: number;
  /** Last byte, inclusive; the end of the file when absent. */
  end?: number;
  /** Bytes per read, which is also the most a reader holds in memory. @default 524288 (512 KiB) */
  chunkBytes?: number;
}

/**
 * A readable stream of a growing file, from `start` to `end` (or the end of the file), at the pace of its
 * consumer. Bytes still in the source's memory window are handed on as they are (shared with every other
 * reader); older ones are read from the descriptor into a fresh buffer of at most one chunk. Either way it
 * reads only when the consumer wants more, and waits for a progress notice when it has caught up with the
 * writer: no timers, no polling. It errors (so the HTTP layer destroys the connection) as soon as the file fails, and ends
 * cleanly only when the file is complete and verified or the requested range was readable in full.
 */
export class GrowingFileReader extends Readable {
  private file: PositionalFile | undefined;
  /** Opened in the constructor, so the hold on the file is taken before the writer can let go of it. */
  private readonly opening: Promise<PositionalFile>;
  private unsubscribe: (() => void) | undefined;
  private position: number;
  private readonly end: number | undefined;
  private readonly chunkBytes: number;
  private reading = false;
  private waiting = false;
  /** Set after the first chunk: the next read waits one turn of the event loop (see `pump`). */
  private yieldOnce = false;
  private delivered = false;

  constructor(
    private readonly source: GrowingFileSource,
    options: GrowingFileReaderOptions = {},
  ) {
    // A high-water mark of one byte: Readable asks for the next read only once its buffer is empty (the
    // consumer took the last chunk), so a reader never holds more than the one chunk it read. (Not 0: with 0,
    // Readable never starts reading after an asynchronous _construct.)
    super({ highWaterMark: 1 });
    const chunkBytes = options.chunkBytes ?? 512 * 1024;
    this.chunkBytes = chunkBytes;
    this.position = options.start ?? 0;
    this.end = options.end;
    if (this.position < 0 || (this.end !== undefined && this.end < this.position - 1)) {
      throw new RangeError(`bad range ${this.position}-${String(this.end)}`);
    }
    this.opening = source.openBytes();
    // Awaited in _construct; this only keeps a failure from counting as unhandled in between.
    this.opening.catch(() => undefined);
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.opening.then(
      (file) => {
        this.file = file;
        this.unsubscribe = this.source.onProgress(() => this.onProgress());
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _read(): void {
    if (this.yieldOnce) {
      this.yieldOnce = false;
      setImmediate(() => this.pump());
      return;
    }
    this.pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    const file = this.file;
    this.file = undefined;
    if (!file) {
      callback(error);
      return;
    }
    file.close().then(
      () => callback(error),
      () => callback(error),
    );
  }

  private onProgress(): void {
    if (this.source.state === 'failed') {
      // At once, even if the consumer is paused: a client must not wait on a file that will never come.
      this.destroy(this.source.failure);
      return;
    }
    if (this.waiting) {
      this.waiting = false;
      this.pump();
    }
  }

  private pump(): void {
    if (this.reading || this.destroyed || !this.file) return;
    const { source } = this;
    if (source.state === 'failed') {
      this.destroy(source.failure);
      return;
    }
    const limit = this.end === undefined ? source.readableBytes : Math.min(source.readableBytes, this.end + 1);
    if (this.position < limit) {
      let max = this.chunkBytes;
      if (!this.delivered) {
        // A new client gets its first bytes at once, but the rest of what it is behind waits one turn, so
        // that the other requests that arrived together are answered before any catch-up.
        this.delivered = true;
        this.yieldOnce = true;
        max = Math.min(max, FIRST_CHUNK_BYTES);
      }
      const until = this.position + Math.min(max, limit - this.position);
      const recent = source.recentBytes?.(this.position, until);
      if (recent) {
        // From the download's memory window: shared buffers, no read, no copy.
        this.position = until;
        for (const bytes of recent) this.push(bytes);
        return;
      }
      this.readChunk(this.file, until - this.position);
      return;
    }
    if (this.end !== undefined && this.position > this.end) {
      this.push(null);
      return;
    }
    if (source.state === 'complete') {
      if (this.end === undefined) this.push(null);
      else this.destroy(new LazyContentError('INTERNAL', 'Requested range lies beyond the end of the file'));
      return;
    }
    this.waiting = true;
  }

  private readChunk(file: PositionalFile, length: number): void {
    this.reading = true;
    const buffer = Buffer.allocUnsafe(length);
    file.read(buffer, this.position).then(
      (bytesRead) => {
        this.reading = false;
        if (this.destroyed) return;
        if (bytesRead === 0) {
          // The writer said these bytes were on disk: a file that shrank under us is broken.
          this.destroy(new LazyContentError('INTERNAL', 'The file ended early'));
          return;
        }
        this.position += bytesRead;
        // No copy: the buffer the kernel filled is the chunk handed on.
        this.push(bytesRead === length ? buffer : buffer.subarray(0, bytesRead));
      },
      (err: Error) => {
        this.reading = false;
        this.destroy(err);
      },
    );
  }
}
