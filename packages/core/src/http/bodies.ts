import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ResponseBody } from '../outcome.js';
import type { OpenedFile } from '../store/content-store.js';

/** Where the bytes of a file body come from: memory for small files, an open file otherwise. */
export type ByteSource = { kind: 'buffer'; data: Buffer } | { kind: 'file'; file: OpenedFile };

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export interface MultipartPart extends ByteRange {
  /** The part's boundary line and headers, ready to write. */
  head: Buffer;
}

function release(source: ByteSource): void {
  if (source.kind === 'file') source.file.close().catch(() => undefined);
}

async function writeAll(res: Writable, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<void> {
  try {
    await pipeline(Readable.from(chunks, { objectMode: false }), res);
  } catch (err) {
    // pipeline destroyed `res`: the client sees a cut connection, never a clean end.
    if (!res.destroyed) res.destroy(err as Error);
  }
}

/** One range (or the whole file) of a source. */
export class RangeBody implements ResponseBody {
  constructor(
    private readonly source: ByteSource,
    private readonly range: ByteRange,
  ) {}

  async writeTo(res: Writable): Promise<void> {
    const { source, range } = this;
    if (source.kind === 'buffer') {
      res.end(source.data.subarray(range.start, range.end + 1));
      return;
    }
    try {
      await pipeline(source.file.slice(range.start, range.end), res);
    } catch (err) {
      if (!res.destroyed) res.destroy(err as Error);
    } finally {
      release(source);
    }
  }

  discard(): void {
    release(this.source);
  }
}

/** `multipart/byteranges`: several ranges of one source, each behind its part header. */
export class MultipartBody implements ResponseBody {
  constructor(
    private readonly source: ByteSource,
    private readonly parts: MultipartPart[],
    private readonly trailer: Buffer,
  ) {}

  async writeTo(res: Writable): Promise<void> {
    const { source, parts, trailer } = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      for (const part of parts) {
        yield part.head;
        if (source.kind === 'buffer') {
          yield source.data.subarray(part.start, part.end + 1);
        } else {
          for await (const chunk of source.file.slice(part.start, part.end)) yield chunk as Buffer;
        }
      }
      yield trailer;
    }
    try {
      await writeAll(res, chunks());
    } finally {
      release(source);
    }
  }

  discard(): void {
    release(this.source);
  }
}
