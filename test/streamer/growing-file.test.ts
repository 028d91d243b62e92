import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LazyContentError } from '../../packages/core/src/errors.js';
import { FIRST_CHUNK_BYTES, GrowingFileReader, LocalGrowingFile } from '../../packages/core/src/streamer/growing-file.js';
import { collect, firstChunk, outcome, randomFile, settle } from './helpers.js';

let dir: string;
let handle: FileHandle;
let file: LocalGrowingFile;
let position = 0;

/** Starts the test over with a file that keeps `maxWindowBytes` of the latest bytes in memory. */
function windowed(maxWindowBytes: number): LocalGrowingFile {
  file = new LocalGrowingFile(undefined, maxWindowBytes);
  file.attach(handle);
  return file;
}

/** A chunk with an ArrayBuffer of its own (Buffer.alloc never uses the shared pool), so that sharing is provable. */
function ownChunk(bytes: Buffer): Buffer {
  const own = Buffer.alloc(bytes.length);
  bytes.copy(own);
  return own;
}

/** Keeps a chunk in the window, appends it and announces it: what a fill does for each upstream chunk. */
async function keepAndAppend(bytes: Buffer, readable?: number): Promise<void> {
  file.keep(bytes, position);
  await append(bytes, readable);
}

/** Splits `body` into chunks of `size` bytes (the last may be shorter), each with its own memory. */
function chunksOf(body: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) out.push(ownChunk(body.subarray(at, at + size)));
  return out;
}

/** Appends bytes to the file as the writer does, then announces them. */
async function append(bytes: Buffer, readable = position + bytes.length): Promise<void> {
  await handle.write(bytes, 0, bytes.length, position);
  position += bytes.length;
  file.advance(position, readable);
}

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-grow-'));
  handle = await fsp.open(path.join(dir, 'f.part'), 'wx+');
  file = new LocalGrowingFile();
  file.attach(handle);
  position = 0;
});
afterEach(async () => {
  file.release();
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('GrowingFileReader', () => {
  it('follows the writer and ends only when the file is complete', async () => {
    const body = randomFile(300_000);
    const reader = new GrowingFileReader(file, { chunkBytes: 64 * 1024 });
    const all = collect(reader);
    await append(body.subarray(0, 100_000));
    await append(body.subarray(100_000, 250_000));
    await append(body.subarray(250_000));
    expect(reader.readableEnded).toBe(false);
    file.complete(body.length);
    expect((await all).equals(body)).toBe(true);
  });

  it('gives a new reader its first bytes at once and the rest of what it is behind a turn later', async () => {
    const body = randomFile(1_000_000);
    await append(body);
    const reader = new GrowingFileReader(file, { chunkBytes: 512 * 1024 });
    const chunks: Buffer[] = [];
    const first = new Promise<void>((resolve) =>
      reader.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        resolve();
      }),
    );
    await first;
    // Still the turn of the first chunk (microtasks and nextTicks have run): nothing more was sent.
    await new Promise((resolve) => process.nextTick(resolve));
    expect(chunks.map((c) => c.length)).toEqual([FIRST_CHUNK_BYTES]);
    // The next turn: the catch-up, in chunks of chunkBytes.
    await new Promise((resolve) => setImmediate(resolve));
    file.complete(body.length);
    await once(reader, 'end');
    expect(chunks[1]!.length).toBe(512 * 1024);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
  });

  it('never reads past readableBytes (the held-back tail)', async () => {
    const body = randomFile(200_000);
    const reader = new GrowingFileReader(file, { chunkBytes: 16 * 1024 });
    const chunks: Buffer[] = [];
    let received = 0;
    let reachedVisible!: () => void;
    const reached = new Promise<void>((resolve) => (reachedVisible = resolve));
    reader.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= 150_000) reachedVisible();
    });
    const ended = once(reader, 'end');
    await append(body, 150_000);
    await reached;
    await settle();
    expect(received).toBe(150_000);
    // Verified: the tail is released and the reader gets it.
    file.complete(body.length);
    await ended;
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
  });

  it('is destroyed at once when the file fails, even while paused', async () => {
    const reader = new GrowingFileReader(file, { chunkBytes: 16 * 1024 });
    const started = firstChunk(reader);
    await append(randomFile(100_000));
    expect((await started).first.length).toBeGreaterThan(0);
    const closed = new Promise<Error | undefined>((resolve) => reader.once('error', resolve));
    file.fail(new LazyContentError('UPSTREAM_FAILED', 'The download from the upstream repository failed'));
    expect(await closed).toMatchObject({ code: 'UPSTREAM_FAILED' });
    expect(reader.destroyed).toBe(true);
  });

  it('serves a range, ending as soon as the range is readable, before the file is complete', async () => {
    const body = randomFile(100_000);
    const reader = new GrowingFileReader(file, { start: 10, end: 19 });
    const got = collect(reader);
    await append(body);
    expect((await got).equals(body.subarray(10, 20))).toBe(true);
    expect(file.state).toBe('growing');
  });

  it('errors on a range beyond the end of the completed file', async () => {
    const reader = new GrowingFileReader(file, { start: 0, end: 999 });
    await append(randomFile(500));
    file.complete(500);
    const seen = await outcome(reader);
    expect(seen.error).toBeInstanceOf(LazyContentError);
  });

  it('refuses new readers of a failed file', async () => {
    file.fail(new LazyContentError('UPSTREAM_FAILED', 'x'));
    const seen = await outcome(new GrowingFileReader(file));
    expect(seen.error).toMatchObject({ code: 'UPSTREAM_FAILED' });
  });

  it('keeps the descriptor open for readers after the writer released it', async () => {
    const body = randomFile(50_000);
    await append(body);
    file.complete(body.length);
    const reader = new GrowingFileReader(file);
    const got = collect(reader);
    file.release();
    expect((await got).equals(body)).toBe(true);
  });
});

/**
 * Reads a stream to its end in flowing mode, as `pipe` does, keeping its chunks as they came (to tell shared
 * buffers from fresh ones). Not with `for await`: a paused `read()` concatenates whatever is buffered.
 */
function gather(stream: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(chunks));
    stream.once('error', reject);
  });
}

/** Whether `bytes` is a view of the memory of one of `kept` (no copy was made). */
function sharedWith(bytes: Buffer, kept: Buffer[]): boolean {
  return kept.some((k) => k.buffer === bytes.buffer);
}

/** Deterministic bytes that differ from position to position (so a misplaced byte shows), from a seed. */
function seededBytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe('LocalGrowingFile memory window', () => {
  it('returns exactly [position, end) across chunk boundaries, as views of the kept chunks (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer({ min: 1, max: 0x7fffffff }),
          maxWindowBytes: fc.integer({ min: 1, max: 1500 }),
          // Empty chunks included: they must change nothing.
          steps: fc.array(fc.record({ size: fc.integer({ min: 0, max: 300 }), diskPercent: fc.integer({ min: 0, max: 100 }) }), {
            minLength: 1,
            maxLength: 40,
          }),
          queries: fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 25 }),
        }),
        ({ seed, maxWindowBytes, steps, queries }) => {
          const total = steps.reduce((sum, s) => sum + s.size, 0);
          const body = seededBytes(total, seed);
          const grow = new LocalGrowingFile(undefined, maxWindowBytes);
          const kept: { offset: number; bytes: Buffer }[] = [];
          // A model of the rule: a chunk goes once it ends at least maxWindowBytes behind what readers may
          // read, checked whenever a chunk is kept and whenever more of the file reaches the disk.
          const model: { offset: number; length: number }[] = [];
          let keptEnd = 0;
          let written = 0;
          const trimModel = () => {
            while (model.length > 1 && model[0]!.offset + model[0]!.length <= written - maxWindowBytes) model.shift();
          };
          for (const step of steps) {
            const bytes = ownChunk(body.subarray(keptEnd, keptEnd + step.size));
            grow.keep(bytes, keptEnd);
            if (bytes.length > 0) {
              kept.push({ offset: keptEnd, bytes });
              model.push({ offset: keptEnd, length: bytes.length });
              trimModel();
            }
            keptEnd += bytes.length;
            if (keptEnd === 0) continue;
            const start = model[0]!.offset;
            // The last maxWindowBytes that readers may read are always there, however far the disk is behind
            // what was received...
            expect(grow.recentBytes(Math.max(0, written - maxWindowBytes), keptEnd)).toBeDefined();
            // ...and so is every byte not on disk yet.
            expect(start).toBeLessThanOrEqual(written);
            expect(grow.recentBytes(Math.min(written, keptEnd - 1), keptEnd)).toBeDefined();
            // The window starts exactly where the model says: nothing older is kept.
            expect(grow.recentBytes(start, keptEnd)).toBeDefined();
            if (start > 0) expect(grow.recentBytes(start - 1, keptEnd)).toBeUndefined();
            // Nothing beyond what was kept.
            expect(grow.recentBytes(keptEnd - 1, keptEnd + 1)).toBeUndefined();
            // Part of the kept bytes reach the disk now; the rest at a later step.
            const before = written;
            written += Math.floor(((keptEnd - written) * step.diskPercent) / 100);
            grow.advance(written, written);
            if (written > before) trimModel();
          }
          const windowStart = model.length > 0 ? model[0]!.offset : 0;
          for (const [x, y] of queries) {
            const from = x % (keptEnd + 1);
            const to = y % (keptEnd + 1);
            const got = grow.recentBytes(from, to);
            if (to <= from) {
              expect(got).toEqual([]);
              continue;
            }
            if (from < windowStart) {
              expect(got).toBeUndefined();
              continue;
            }
            expect(got).toBeDefined();
            expect(Buffer.concat(got!).equals(body.subarray(from, to))).toBe(true);
            // Every part is a non-empty view of the chunk that holds its bytes, at the right place: no copy.
            let at = from;
            for (const part of got!) {
              expect(part.length).toBeGreaterThan(0);
              const holder = kept.find((k) => k.offset <= at && at < k.offset + k.bytes.length)!;
              expect(part.buffer).toBe(holder.bytes.buffer);
              expect(part.byteOffset).toBe(holder.bytes.byteOffset + (at - holder.offset));
              expect(at + part.length).toBeLessThanOrEqual(holder.offset + holder.bytes.length);
              at += part.length;
            }
            expect(at).toBe(to);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('hands out the kept chunks themselves, or views of them: no copy', () => {
    windowed(1024);
    const a = ownChunk(randomFile(100));
    const b = ownChunk(randomFile(100));
    file.keep(a, 0);
    file.keep(b, 100);
    const [whole] = file.recentBytes(0, 100)!;
    expect(whole).toBe(a);
    const parts = file.recentBytes(50, 150)!;
    expect(parts).toHaveLength(2);
    expect(parts[0]!.buffer).toBe(a.buffer);
    expect(parts[0]!.byteOffset).toBe(a.byteOffset + 50);
    expect(parts[0]!.length).toBe(50);
    expect(parts[1]!.buffer).toBe(b.buffer);
    expect(parts[1]!.byteOffset).toBe(b.byteOffset);
    expect(parts[1]!.length).toBe(50);
    // The same memory: a change to the kept chunk shows through the view.
    a[60] = (a[60]! + 1) & 0xff;
    expect(parts[0]![10]).toBe(a[60]);
  });

  it('copies small chunks together into blocks: one buffer per block, shared by every reader', () => {
    file = new LocalGrowingFile(undefined, 2048, 256);
    const body = randomFile(1024);
    const chunks = chunksOf(body, 16);
    chunks.slice(0, 10).forEach((c, i) => file.keep(c, i * 16));
    // The open block is handed out as far as it is filled.
    const early = file.recentBytes(0, 160)!;
    expect(early).toHaveLength(1);
    expect(early[0]!.equals(body.subarray(0, 160))).toBe(true);
    chunks.slice(10).forEach((c, i) => file.keep(c, (i + 10) * 16));
    // Bytes handed out before are unchanged by what was copied in after them.
    expect(early[0]!.equals(body.subarray(0, 160))).toBe(true);
    const parts = file.recentBytes(0, 1024)!;
    expect(parts.map((p) => p.length)).toEqual([256, 256, 256, 256]);
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    // A copy of the download, not of the reader: two readers get the same memory.
    const again = file.recentBytes(300, 600)!;
    expect(again[0]!.buffer).toBe(parts[1]!.buffer);
    expect(again[0]!.byteOffset).toBe(parts[1]!.byteOffset + 300 - 256);
    // A chunk as large as a block, with no block open, is kept as it is.
    const big = ownChunk(randomFile(600));
    file.keep(big, 1024);
    expect(file.recentBytes(1024, 1624)![0]).toBe(big);
  });

  it('returns exactly [position, end) from blocks, whatever the chunks, in parts of at least a block but the first and last (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer({ min: 1, max: 0x7fffffff }),
          blockBytes: fc.integer({ min: 1, max: 300 }),
          maxWindowBytes: fc.integer({ min: 1, max: 1500 }),
          steps: fc.array(fc.record({ size: fc.integer({ min: 0, max: 700 }), diskPercent: fc.integer({ min: 0, max: 100 }) }), {
            minLength: 1,
            maxLength: 30,
          }),
        }),
        ({ seed, blockBytes, maxWindowBytes, steps }) => {
          const total = steps.reduce((sum, st) => sum + st.size, 0);
          const body = seededBytes(total, seed);
          const grow = new LocalGrowingFile(undefined, maxWindowBytes, blockBytes);
          let keptEnd = 0;
          let written = 0;
          for (const step of steps) {
            grow.keep(ownChunk(body.subarray(keptEnd, keptEnd + step.size)), keptEnd);
            keptEnd += step.size;
            written += Math.floor(((keptEnd - written) * step.diskPercent) / 100);
            grow.advance(written, written);
            if (keptEnd === 0) continue;
            const from = Math.max(0, written - maxWindowBytes);
            const got = grow.recentBytes(from, keptEnd);
            expect(got).toBeDefined();
            expect(Buffer.concat(got!).equals(body.subarray(from, keptEnd))).toBe(true);
            for (const part of got!) expect(part.length).toBeGreaterThan(0);
            // Only the first part (cut at `from`) and the last (the open block) may be shorter than a block.
            for (const part of got!.slice(1, -1)) expect(part.length).toBeGreaterThanOrEqual(blockBytes);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('answers [] for an empty range and undefined for bytes it never kept', () => {
    windowed(1024);
    file.keep(ownChunk(randomFile(100)), 0);
    expect(file.recentBytes(40, 40)).toEqual([]);
    expect(file.recentBytes(40, 10)).toEqual([]);
    expect(file.recentBytes(90, 101)).toBeUndefined();
    expect(file.recentBytes(100, 101)).toBeUndefined();
    expect(file.recentBytes(0, 100)).toBeDefined();
  });

  it('never drops a chunk that is not on disk yet, however far past the window the download is', () => {
    windowed(10);
    const body = randomFile(500);
    const chunks = chunksOf(body, 100);
    // Kept, none written: all five stay, 50 times the window.
    chunks.forEach((c, i) => file.keep(c, i * 100));
    expect(Buffer.concat(file.recentBytes(0, 500)!).equals(body)).toBe(true);
    // 250 bytes on disk: the next chunk lets go of the two that are wholly on disk, not the half-written third.
    file.advance(250, 250);
    const next = ownChunk(randomFile(100));
    file.keep(next, 500);
    expect(file.recentBytes(199, 600)).toBeUndefined();
    expect(Buffer.concat(file.recentBytes(200, 600)!).equals(Buffer.concat([body.subarray(200), next]))).toBe(true);
    // All 600 on disk: the window shrinks to the chunk holding the last 10 readable bytes, and the newest one
    // received since (not on disk yet).
    file.advance(600, 600);
    const last = ownChunk(randomFile(100));
    file.keep(last, 600);
    expect(file.recentBytes(499, 700)).toBeUndefined();
    expect(file.recentBytes(500, 700)![0]).toBe(next);
    expect(file.recentBytes(600, 700)![0]).toBe(last);
  });

  it('keeps the window behind what readers may read when the disk lags far behind the download', () => {
    // The writer's queue holds 700 bytes not on disk yet: readers just behind the 300 readable bytes must
    // still be served from memory, or a slow disk sends every reader to the disk and slows it further.
    windowed(200);
    const body = randomFile(1000);
    chunksOf(body, 100).forEach((c, i) => file.keep(c, i * 100));
    file.advance(300, 300);
    expect(file.recentBytes(99, 300)).toBeUndefined();
    expect(Buffer.concat(file.recentBytes(100, 300)!).equals(body.subarray(100, 300))).toBe(true);
    expect(Buffer.concat(file.recentBytes(100, 1000)!).equals(body.subarray(100))).toBe(true);
  });

  it('keeps at least the latest maxWindowBytes once everything is on disk', async () => {
    windowed(250);
    const body = randomFile(1000);
    for (const c of chunksOf(body, 100)) await keepAndAppend(c);
    // Written before each keep except the last one: the window is the last chunk plus enough older ones for
    // 250 bytes, all of them whole.
    expect(file.recentBytes(1000 - 250, 1000)).toBeDefined();
    const start = [...Array(10).keys()].map((i) => i * 100).find((o) => file.recentBytes(o, 1000) !== undefined)!;
    expect(start).toBeGreaterThanOrEqual(1000 - 250 - 100);
    expect(start).toBeLessThanOrEqual(1000 - 250);
  });

  it('keeps nothing with a window of 0 (the default), and readers read everything from disk', async () => {
    for (const grow of [new LocalGrowingFile(), new LocalGrowingFile(undefined, 0)]) {
      grow.keep(ownChunk(randomFile(100)), 0);
      expect(grow.recentBytes(0, 100)).toBeUndefined();
      expect(grow.recentBytes(99, 100)).toBeUndefined();
      expect(grow.recentBytes(5, 5)).toEqual([]);
    }
    windowed(0);
    const body = randomFile(100_000);
    const chunks = chunksOf(body, 10_000);
    const reader = new GrowingFileReader(file, { chunkBytes: 8 * 1024 });
    const got = gather(reader);
    for (const c of chunks) await keepAndAppend(c);
    file.complete(body.length);
    const received = await got;
    expect(Buffer.concat(received).equals(body)).toBe(true);
    expect(received.some((r) => sharedWith(r, chunks))).toBe(false);
  });

  it('starts over when a chunk comes out of order: no byte from before it is ever served', () => {
    windowed(10_000);
    /** What the window serves of [from, to) is either nothing or exactly `expected`. */
    const servesNoWrongByte = (from: number, to: number, expected: Buffer) => {
      const got = file.recentBytes(from, to);
      if (got) expect(Buffer.concat(got).equals(expected)).toBe(true);
    };
    const a = ownChunk(randomFile(100));
    const b = ownChunk(randomFile(100));
    file.keep(a, 0);
    file.keep(b, 100);
    expect(Buffer.concat(file.recentBytes(0, 200)!).equals(Buffer.concat([a, b]))).toBe(true);
    // A gap: what came before is gone.
    const c = ownChunk(randomFile(100));
    file.keep(c, 500);
    expect(file.recentBytes(0, 100)).toBeUndefined();
    expect(file.recentBytes(100, 200)).toBeUndefined();
    expect(file.recentBytes(199, 501)).toBeUndefined();
    servesNoWrongByte(500, 600, c);
    // Back to an earlier offset (a download begun again): the old bytes at that offset are gone too.
    const again = ownChunk(randomFile(100));
    file.keep(again, 0);
    expect(file.recentBytes(500, 600)).toBeUndefined();
    servesNoWrongByte(0, 100, again);
    // An overlap.
    const overlap = ownChunk(randomFile(100));
    file.keep(overlap, 50);
    expect(file.recentBytes(0, 50)).toBeUndefined();
    servesNoWrongByte(50, 150, overlap);
    // In order again: the window grows from there, with the right bytes.
    const after = ownChunk(randomFile(100));
    file.keep(after, 150);
    expect(file.recentBytes(150, 250)![0]).toBe(after);
    servesNoWrongByte(50, 250, Buffer.concat([overlap, after]));
  });

  it('keeps the chunk that starts the window over, and a full window after it', () => {
    windowed(250);
    file.keep(ownChunk(randomFile(100)), 0);
    file.keep(ownChunk(randomFile(100)), 100);
    const restart = ownChunk(randomFile(1000));
    file.keep(restart, 5000);
    expect(file.recentBytes(5000, 6000)?.[0]).toBe(restart);
    file.advance(1_000_000, 0);
    const body = randomFile(1000);
    chunksOf(body, 100).forEach((chunk, i) => file.keep(chunk, 6000 + i * 100));
    const latest = file.recentBytes(7000 - 250, 7000);
    expect(latest).toBeDefined();
    expect(Buffer.concat(latest!).equals(body.subarray(750))).toBe(true);
  });

  it('drops the window when the file fails, keeps nothing after, and errors its readers at once', async () => {
    windowed(1024 * 1024);
    const chunks = chunksOf(randomFile(64 * 1024), 8 * 1024);
    const reader = new GrowingFileReader(file, { chunkBytes: 8 * 1024 });
    const started = firstChunk(reader);
    for (const c of chunks.slice(0, 4)) await keepAndAppend(c);
    const { first } = await started;
    // Followed the download from memory.
    expect(first.buffer).toBe(chunks[0]!.buffer);
    expect(file.recentBytes(0, position)).toBeDefined();
    const errored = new Promise<Error | undefined>((resolve) => reader.once('error', resolve));
    file.fail(new LazyContentError('UPSTREAM_FAILED', 'The download from the upstream repository failed'));
    expect(await errored).toMatchObject({ code: 'UPSTREAM_FAILED' });
    expect(reader.destroyed).toBe(true);
    expect(file.recentBytes(0, position)).toBeUndefined();
    expect(file.recentBytes(position - 1, position)).toBeUndefined();
    file.keep(chunks[4]!, position);
    expect(file.recentBytes(position, position + chunks[4]!.length)).toBeUndefined();
    const late = await outcome(new GrowingFileReader(file));
    expect(late.error).toMatchObject({ code: 'UPSTREAM_FAILED' });
  });

  it('keeps the window for readers after completion, and drops it when the last hold goes', async () => {
    windowed(1024 * 1024);
    const body = randomFile(100_000);
    const chunks = chunksOf(body, 10_000);
    for (const c of chunks) await keepAndAppend(c);
    file.complete(body.length);
    // Kept after complete: nothing new is taken in.
    file.keep(ownChunk(randomFile(10)), body.length);
    expect(file.recentBytes(body.length, body.length + 10)).toBeUndefined();
    const reader = new GrowingFileReader(file, { chunkBytes: 16 * 1024 });
    const closed = once(reader, 'close');
    const got = gather(reader);
    file.release();
    // The writer let go, a reader still holds the file: the window stays.
    expect(file.recentBytes(0, body.length)).toBeDefined();
    const received = await got;
    expect(Buffer.concat(received).equals(body)).toBe(true);
    expect(received.every((r) => sharedWith(r, chunks))).toBe(true);
    await closed;
    expect(file.recentBytes(0, 1)).toBeUndefined();
    expect(file.recentBytes(body.length - 1, body.length)).toBeUndefined();
  });
});

describe('GrowingFileReader with a memory window', () => {
  it('gives a reader inside the window and one behind it the same bytes, from memory and from disk', async () => {
    windowed(64 * 1024);
    const body = randomFile(512 * 1024);
    const chunks = chunksOf(body, 16 * 1024);
    const diskReads = vi.spyOn(handle, 'read');
    // Half the file is down before the readers come: the window holds about its last 64 KiB.
    for (const c of chunks.slice(0, 16)) await keepAndAppend(c);
    expect(file.recentBytes(0, 1)).toBeUndefined();
    const insideStart = position - 40 * 1024 + 123;
    expect(file.recentBytes(insideStart, position)).toBeDefined();

    const behind = new GrowingFileReader(file, { chunkBytes: 16 * 1024 });
    const inside = new GrowingFileReader(file, { start: insideStart, chunkBytes: 16 * 1024 });
    const ranged = new GrowingFileReader(file, { start: insideStart + 1000, end: insideStart + 70_000, chunkBytes: 16 * 1024 });
    const behindGot = gather(behind);
    const insideGot = gather(inside);
    const rangedGot = gather(ranged);
    // The rest comes while they read.
    for (const c of chunks.slice(16)) {
      await keepAndAppend(c);
      await settle();
    }
    file.complete(body.length);

    const behindChunks = await behindGot;
    const insideChunks = await insideGot;
    const rangedChunks = await rangedGot;
    expect(Buffer.concat(behindChunks).equals(body)).toBe(true);
    expect(Buffer.concat(insideChunks).equals(body.subarray(insideStart))).toBe(true);
    expect(Buffer.concat(rangedChunks).equals(body.subarray(insideStart + 1000, insideStart + 70_001))).toBe(true);

    // The reader behind started on disk (a fresh buffer, read at 0) and ended in the window: both paths.
    expect(sharedWith(behindChunks[0]!, chunks)).toBe(false);
    expect(diskReads.mock.calls.some((call) => (call as unknown[])[3] === 0)).toBe(true);
    expect(sharedWith(behindChunks.at(-1)!, chunks)).toBe(true);
    // The readers that started inside kept up with the download: everything from memory (a read from disk
    // would be a fresh buffer), never the disk.
    expect(insideChunks.every((c) => sharedWith(c, chunks))).toBe(true);
    expect(rangedChunks.every((c) => sharedWith(c, chunks))).toBe(true);
    diskReads.mockRestore();
  });

  it('reads from disk the part of a chunk that has left the window, then the rest from memory', async () => {
    windowed(100);
    const body = randomFile(1000);
    const chunks = chunksOf(body, 100);
    for (const c of chunks) await keepAndAppend(c);
    file.complete(body.length);
    // The window is the last one or two chunks; a reader of 750..999 straddles its start.
    const reader = new GrowingFileReader(file, { start: 750, chunkBytes: 4096 });
    const received = await gather(reader);
    expect(Buffer.concat(received).equals(body.subarray(750))).toBe(true);
  });
});
