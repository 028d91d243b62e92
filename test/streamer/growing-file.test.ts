import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LazyContentError } from '../../packages/core/src/errors.js';
import { GrowingFileReader, LocalGrowingFile } from '../../packages/core/src/streamer/growing-file.js';
import { collect, firstChunk, outcome, randomFile, settle } from './helpers.js';

let dir: string;
let handle: FileHandle;
let file: LocalGrowingFile;
let position = 0;

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
