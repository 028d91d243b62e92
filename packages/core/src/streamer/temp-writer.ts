import type { FileHandle } from 'node:fs/promises';

/** Writes all of `buffers` at `position`, going on after a partial write (libuv caps one writev at IOV_MAX). */
async function writeFully(handle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pending = buffers;
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, at);
    if (bytesWritten <= 0) throw new Error('write made no progress');
    at += bytesWritten;
    let skip = bytesWritten;
    let first = 0;
    while (first < pending.length && skip >= (pending[first]?.length ?? 0)) {
      skip -= pending[first]?.length ?? 0;
      first++;
    }
    pending = pending.slice(first);
    const head = pending[0];
    if (head && skip > 0) pending[0] = head.subarray(skip);
  }
}

/**
 * The write side of a fill: chunks from the upstream are queued and written in batches (one `writev` per
 * batch), so the download never waits on one write per network chunk, and readers hear of each batch as soon
 * as it is on disk. The queue is bounded: past `maxQueuedBytes` the download waits for the disk, never for
 * a client.
 */
export class TempWriter {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private position = 0;
  private flushing: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly handle: FileHandle,
    /** Called with the total bytes on disk after each batch. */
    private readonly onWritten: (bytesOnDisk: number) => void,
    private readonly maxQueuedBytes = 8 * 1024 * 1024,
  ) {}

  /** Queues `chunk`; waits only when the queue is full. Rejects if an earlier write failed. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.kick();
    if (this.queuedBytes >= this.maxQueuedBytes) await this.flushing;
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits until everything queued is on disk. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.failure !== undefined) throw this.failure;
  }

  private kick(): void {
    if (this.flushing || this.failure !== undefined) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
      // A chunk queued after the loop saw an empty queue but before this ran would otherwise wait forever.
      if (this.queue.length > 0) this.kick();
    });
  }

  /** Never rejects: a failure is kept for the next `write` or `drain`, so no rejection goes unhandled. */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        const bytes = this.queuedBytes;
        this.queue = [];
        this.queuedBytes = 0;
        await writeFully(this.handle, batch, this.position);
        this.position += bytes;
        this.onWritten(this.position);
      }
    } catch (err) {
      this.failure = err ?? new Error('write failed');
    }
  }
}
