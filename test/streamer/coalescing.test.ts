import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Readable } from 'node:stream';
import type { Fill } from '../../packages/core/src/streamer/fill.js';
import { type FaultServer, startFaultServer } from '../upstream/fault-server.js';
import { collect, digestOf, firstChunk, type Harness, harness, MiB, randomFile, settle, sha256, source, tempFiles, until } from './helpers.js';

const BIG = randomFile(12 * MiB);
const BIG_SHA = sha256(BIG);

let upstream: FaultServer;
let h: Harness;

beforeAll(async () => {
  upstream = await startFaultServer();
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(async () => {
  h = await harness();
});
afterEach(async () => {
  await h.close();
});

/** A fresh upstream path serving BIG (each test counts its own requests). */
function serve(name: string, body = BIG): string {
  const path = `/${name}`;
  upstream.put(path, body);
  return path;
}

describe('coalesced fill', () => {
  it('serves 50 concurrent readers from one upstream request, each with identical bytes', async () => {
    const path = serve('fifty.bin');
    const src = source('repo/fifty.bin', `${upstream.origin}${path}`, BIG);
    const fills = new Set<Fill>();
    const digests = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const acquired = await h.engine.open('repo/fifty.bin', [src]);
        if (acquired.kind !== 'fill') throw new Error('expected a fill');
        fills.add(acquired.fill);
        const head = await acquired.fill.head;
        expect(head.size).toBe(BIG.length);
        return digestOf(acquired.fill.createReader());
      }),
    );
    expect(fills.size).toBe(1);
    // Readers end once the file is verified; the commit (fsync, rename, index) and its event come after.
    await [...fills][0]?.done;
    expect(upstream.requests(path)).toBe(1);
    expect(new Set(digests)).toEqual(new Set([BIG_SHA]));
    expect(h.events.filter((e) => e.name === 'fill:started')).toHaveLength(1);
    expect(h.events.filter((e) => e.name === 'fill:joined')).toHaveLength(49);
    const completed = h.events.filter((e) => e.name === 'fill:completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]?.event).toMatchObject({ key: 'repo/fifty.bin', record: { size: BIG.length, digest: BIG_SHA } });
  });

  it('caches the file, indexes it in Keyv, and serves later requests without the upstream', async () => {
    const path = serve('cached.bin');
    const src = source('repo/cached.bin', `${upstream.origin}${path}`, BIG, { contentType: 'application/x-rpm' });
    const fill = h.engine.fill('repo/cached.bin', [src]);
    const record = await fill.done;
    expect(record).toMatchObject({
      key: 'repo/cached.bin',
      size: BIG.length,
      digestAlgorithm: 'sha256',
      digest: BIG_SHA,
      contentType: 'application/x-rpm',
    });
    expect(await h.index.get('repo/cached.bin')).toEqual(record);
    expect(h.cache.lookup('repo/cached.bin')).toEqual(record);
    expect(h.engine.running('repo/cached.bin')).toBeUndefined();
    expect(await tempFiles(h)).toEqual([]);

    const again = await h.engine.open('repo/cached.bin', [src]);
    expect(again.kind).toBe('cached');
    if (again.kind !== 'cached') return;
    try {
      expect(again.file.info.size).toBe(BIG.length);
      expect(sha256(await again.file.readAll())).toBe(BIG_SHA);
      expect((await collect(again.file.slice(10, 19))).equals(BIG.subarray(10, 20))).toBe(true);
    } finally {
      await again.file.close();
    }
    expect(upstream.requests(path)).toBe(1);
  });

  it('answers a request that comes while the verified file moves into the cache from the cache, once it is there', async () => {
    const path = serve('committing.bin');
    const src = source('repo/committing.bin', `${upstream.origin}${path}`, BIG);
    // Hold the commit (fsync and rename) until the request below has come.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const commit = h.cache.commit.bind(h.cache);
    h.cache.commit = async (...args) => {
      await gate;
      return commit(...args);
    };
    const fill = h.engine.fill('repo/committing.bin', [src]);
    await until(fill, () => fill.state === 'committing');
    let answered = false;
    const during = h.engine.open('repo/committing.bin', [src]).finally(() => (answered = true));
    await settle();
    expect(answered).toBe(false);
    release();
    const acquired = await during;
    expect(acquired.kind).toBe('cached');
    if (acquired.kind !== 'cached') return;
    try {
      // From the cache: the same validators as every later request will see.
      expect(acquired.file.record.digest).toBe(BIG_SHA);
      expect(sha256(await acquired.file.readAll())).toBe(BIG_SHA);
    } finally {
      await acquired.file.close();
    }
    expect(upstream.requests(path)).toBe(1);
  });

  it('gives a reader that joins mid-download the whole file, starting at once', async () => {
    const path = serve('join.bin');
    const src = source('repo/join.bin', `${upstream.origin}${path}?mode=gate&after=${4 * MiB}`, BIG);
    const first = h.engine.fill('repo/join.bin', [src]);
    const firstBytes = collect(first.createReader());
    await upstream.gateReached(path);
    await until(first, () => first.bytesWritten >= 4 * MiB);

    const joined = await h.engine.open('repo/join.bin', [src]);
    expect(joined).toMatchObject({ kind: 'fill', joined: true });
    if (joined.kind !== 'fill') return;
    // The late reader gets the bytes already on disk while the upstream is still held at its gate.
    const late = await firstChunk(joined.fill.createReader());
    expect(late.first.equals(BIG.subarray(0, late.first.length))).toBe(true);

    upstream.release(path);
    const lateBytes = Buffer.concat([late.first, await late.rest()]);
    expect(sha256(lateBytes)).toBe(BIG_SHA);
    expect(sha256(await firstBytes)).toBe(BIG_SHA);
    expect(upstream.requests(path)).toBe(1);
    expect(h.events.find((e) => e.name === 'fill:joined')?.event).toMatchObject({ bytesWritten: expect.any(Number) });
  });

  it('serves ranges during the download: one already on disk at once, one that follows the tail', async () => {
    const path = serve('range.bin');
    const src = source('repo/range.bin', `${upstream.origin}${path}?mode=gate&after=${4 * MiB}`, BIG);
    const fill = h.engine.fill('repo/range.bin', [src]);
    await fill.head;
    await upstream.gateReached(path);
    await until(fill, () => fill.bytesWritten >= 4 * MiB);

    // Entirely on disk: served while the upstream is still held at its gate.
    const onDisk = await collect(fill.createReader({ start: 100, end: 1_000_099 }));
    expect(onDisk.equals(BIG.subarray(100, 1_000_100))).toBe(true);

    const tail = collect(fill.createReader({ start: 3 * MiB, end: 9 * MiB - 1 }));
    const last = collect(fill.createReader({ start: BIG.length - 10, end: BIG.length - 1 }));
    upstream.release(path);
    expect((await tail).equals(BIG.subarray(3 * MiB, 9 * MiB))).toBe(true);
    expect((await last).equals(BIG.subarray(BIG.length - 10))).toBe(true);
    await fill.done;
  });

  it('lets a fast reader and the fill complete while a slow reader is paused, holding one chunk at most', async () => {
    const path = serve('slow-reader.bin');
    const src = source('repo/slow-reader.bin', `${upstream.origin}${path}`, BIG);
    const fill = h.engine.fill('repo/slow-reader.bin', [src]);
    const slow = fill.createReader();
    // Reads one chunk, then nothing: a client that stopped reading.
    const slowStart = await firstChunk(slow);

    const fast = await collect(fill.createReader());
    expect(sha256(fast)).toBe(BIG_SHA);
    await fill.done;
    await settle();

    expect(slow.readableEnded).toBe(false);
    expect(slow.destroyed).toBe(false);
    expect(slow.readableLength).toBeLessThanOrEqual(512 * 1024);
    const rest = await slowStart.rest();
    expect(sha256(Buffer.concat([slowStart.first, rest]))).toBe(BIG_SHA);
  });

  it('completes and caches the file when every reader leaves mid-download', async () => {
    const path = serve('leave.bin');
    const src = source('repo/leave.bin', `${upstream.origin}${path}?mode=gate&after=${2 * MiB}`, BIG);
    const fill = h.engine.fill('repo/leave.bin', [src]);
    const readers: Readable[] = Array.from({ length: 3 }, () => fill.createReader());
    await Promise.all(readers.map((r) => new Promise((resolve) => r.once('data', resolve))));
    await upstream.gateReached(path);
    for (const r of readers) r.destroy();
    await Promise.all(readers.map((r) => new Promise((resolve) => (r.closed ? resolve(null) : r.once('close', resolve)))));
    expect(fill.readers).toBe(0);

    upstream.release(path);
    const record = await fill.done;
    expect(record.digest).toBe(BIG_SHA);
    const cached = await h.cache.open('repo/leave.bin');
    expect(cached).not.toBeNull();
    expect(sha256(await cached!.readAll())).toBe(BIG_SHA);
    await cached!.close();
    expect(upstream.requests(path)).toBe(1);
  });

  it('holds the last bytes back until the file is verified', async () => {
    const body = randomFile(2 * MiB);
    const path = serve('holdback.bin', body);
    const gateAt = body.length - 1000;
    const src = source('repo/holdback.bin', `${upstream.origin}${path}?mode=gate&after=${gateAt}`, body);
    const fill = h.engine.fill('repo/holdback.bin', [src]);
    const reader = fill.createReader();
    const visible = body.length - 64 * 1024;
    const chunks: Buffer[] = [];
    let received = 0;
    let reachedVisible!: () => void;
    const reached = new Promise<void>((resolve) => (reachedVisible = resolve));
    const ended = new Promise<void>((resolve, reject) => reader.on('end', resolve).on('error', reject));
    reader.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= visible) reachedVisible();
    });
    await upstream.gateReached(path);
    await until(fill, () => fill.bytesWritten >= gateAt);
    await reached;
    await settle();
    // Everything on disk is readable except the held-back tail: the reader stops there.
    expect(fill.bytesWritten).toBe(gateAt);
    expect(fill.file.readableBytes).toBe(visible);
    expect(received).toBe(visible);
    expect(fill.state).toBe('downloading');

    upstream.release(path);
    await ended;
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(body));
  });

  it('serves readers of a throttled upstream (following the tail) with identical bytes from one request', async () => {
    // That bytes reach readers before the download ends is shown without timing by the gate tests above.
    const body = randomFile(MiB);
    const path = serve('slow-upstream.bin', body);
    const src = source('repo/slow-upstream.bin', `${upstream.origin}${path}?mode=slow&rate=${4 * MiB}`, body);
    const fill = h.engine.fill('repo/slow-upstream.bin', [src]);
    const digests = await Promise.all([fill.createReader(), fill.createReader(), fill.createReader({ start: 1 })].map(digestOf));
    expect(digests.slice(0, 2)).toEqual([sha256(body), sha256(body)]);
    expect(digests[2]).toBe(sha256(body.subarray(1)));
    expect(upstream.requests(path)).toBe(1);
    await fill.done;
  });

  it('streams a file of unknown size (chunked upstream, no catalog size or digest)', async () => {
    const body = randomFile(3 * MiB + 17);
    const path = serve('chunked.bin', body);
    const src = source('repo/chunked.bin', `${upstream.origin}${path}?mode=chunked`, null);
    const fill = h.engine.fill('repo/chunked.bin', [src]);
    const head = await fill.head;
    expect(head.size).toBeNull();
    expect(head.contentType).toBe('application/x-test');
    expect(sha256(await collect(fill.createReader()))).toBe(sha256(body));
    const record = await fill.done;
    expect(record).toMatchObject({ size: body.length, digestAlgorithm: 'sha256', digest: sha256(body) });
  });

  it('verifies a digest when the size is unknown (chunked upstream)', async () => {
    const body = randomFile(MiB + 5);
    const path = serve('chunked-digest.bin', body);
    const src = source('repo/chunked-digest.bin', `${upstream.origin}${path}?mode=chunked`, body, { size: null });
    const fill = h.engine.fill('repo/chunked-digest.bin', [src]);
    expect(sha256(await collect(fill.createReader()))).toBe(sha256(body));
    await fill.done;
  });

  it('starts a reader created after the fill completed from the cached file', async () => {
    const body = randomFile(MiB);
    const path = serve('late.bin', body);
    const fill = h.engine.fill('repo/late.bin', [source('repo/late.bin', `${upstream.origin}${path}`, body)]);
    await fill.done;
    await settle();
    expect(sha256(await collect(fill.createReader()))).toBe(sha256(body));
  });

  it('follows a redirect from the upstream', async () => {
    const body = randomFile(MiB);
    const path = serve('target.bin', body);
    const src = source('repo/redirected.bin', `${upstream.origin}/moved?mode=redirect&to=${encodeURIComponent(path)}`, body);
    const fill = h.engine.fill('repo/redirected.bin', [src]);
    expect(sha256(await collect(fill.createReader()))).toBe(sha256(body));
    expect(upstream.requests(path)).toBe(1);
  });
});

describe('memory window of a running fill', () => {
  /** Keeps a rejection from counting as unhandled when an assertion fails before the promise is awaited. */
  const quiet = <T>(promise: Promise<T>): Promise<T> => {
    promise.catch(() => undefined);
    return promise;
  };
  const variants: [string, number | undefined][] = [
    ['of 0 (off: every reader on disk)', 0],
    ['of 64 KiB (late readers start on disk)', 64 * 1024],
    ['of 8 MiB (the default)', undefined],
  ];
  for (const [label, memoryWindowBytes] of variants) {
    it(`gives concurrent early, paused, late and range readers identical bytes with a window ${label}`, async () => {
      const w = await harness(memoryWindowBytes === undefined ? {} : { memoryWindowBytes });
      try {
        const name = `window-${memoryWindowBytes ?? 'default'}.bin`;
        const path = serve(name);
        const key = `repo/${name}`;
        const gateAt = 4 * MiB;
        const src = source(key, `${upstream.origin}${path}?mode=gate&after=${gateAt}`, BIG);
        const fill = w.engine.fill(key, [src]);
        // Early readers follow the download from its first byte.
        const early = Array.from({ length: 3 }, () => quiet(digestOf(fill.createReader())));
        const earlyRange = quiet(collect(fill.createReader({ start: 1000, end: 6 * MiB + 77 })));
        // One takes a chunk, then stops reading while the download goes on far past any small window.
        const paused = await firstChunk(fill.createReader());
        await upstream.gateReached(path);
        await until(fill, () => fill.file.readableBytes >= gateAt);

        const readable = fill.file.readableBytes;
        const recent = fill.file.recentBytes?.bind(fill.file);
        expect(recent).toBeDefined();
        if (memoryWindowBytes === 0) {
          expect(recent!(readable - 1, readable)).toBeUndefined();
        } else if (memoryWindowBytes === undefined) {
          // 4 MiB downloaded, at least 8 MiB kept: the whole file so far is in memory.
          expect(Buffer.concat(recent!(0, readable)!).equals(BIG.subarray(0, readable))).toBe(true);
        } else {
          // At least the latest 64 KiB are in memory. How much older data is still there depends on how far the
          // disk lagged behind the last chunk (the window only lets go of bytes on disk), so which late bytes
          // come from disk is not asserted here; growing-file.test.ts covers that mix deterministically.
          const latest = recent!(readable - memoryWindowBytes, readable);
          expect(latest).toBeDefined();
          expect(Buffer.concat(latest!).equals(BIG.subarray(readable - memoryWindowBytes, readable))).toBe(true);
        }

        // Late readers, from the start and around the edge of the window, while the upstream waits at its gate.
        const late = Array.from({ length: 3 }, () =>
          quiet(
            (async () => {
              const joined = await w.engine.open(key, [src]);
              if (joined.kind !== 'fill') throw new Error('expected to join the fill');
              expect(joined.joined).toBe(true);
              return digestOf(joined.fill.createReader());
            })(),
          ),
        );
        const lateRange = quiet(collect(fill.createReader({ start: readable - 100 * 1024 - 3, end: readable + 2 * MiB })));
        upstream.release(path);

        expect(await Promise.all([...early, ...late])).toEqual(Array(6).fill(BIG_SHA));
        expect((await earlyRange).equals(BIG.subarray(1000, 6 * MiB + 78))).toBe(true);
        expect((await lateRange).equals(BIG.subarray(readable - 100 * 1024 - 3, readable + 2 * MiB + 1))).toBe(true);
        expect(sha256(Buffer.concat([paused.first, await paused.rest()]))).toBe(BIG_SHA);
        const record = await fill.done;
        expect(record.digest).toBe(BIG_SHA);
        expect(upstream.requests(path)).toBe(1);
      } finally {
        await w.close();
      }
    });
  }
});
