import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LazyContentError } from '../../packages/core/src/errors.js';
import type { SourceFailureReason } from '../../packages/core/src/streamer/upstream.js';
import type { FillFailureReason } from '../../packages/core/src/streamer/events.js';
import { FillEngine, fillEngineDefaults } from '../../packages/core/src/streamer/fill-engine.js';
import { type FaultServer, refusedPort, startFaultServer, startSilentServer } from '../upstream/fault-server.js';
import {
  collect,
  digestOf,
  type Harness,
  harness,
  MiB,
  outcome,
  randomFile,
  remote,
  sha256,
  source,
  tempFiles,
  until,
} from './helpers.js';

const BODY = randomFile(4 * MiB);
const PATH = '/pkg.bin';

let upstream: FaultServer;
let silent: { port: number; close(): Promise<void> };
let refused: number;
let clock = 1_000_000;
let h: Harness;

/** Timeouts short enough for tests; the assertions never depend on them, only the faults do. */
const quick = () => remote({ connectTimeoutMs: 300, headersTimeoutMs: 300, bodyIdleTimeoutMs: 300 });

beforeAll(async () => {
  upstream = await startFaultServer();
  upstream.put(PATH, BODY);
  silent = await startSilentServer();
  refused = await refusedPort();
});
afterAll(async () => {
  await upstream.close();
  await silent.close();
});
beforeEach(async () => {
  clock = 1_000_000;
  h = await harness({ now: () => clock });
});
afterEach(async () => {
  await h.close();
});

/** Asserts nothing of a failed fill was kept. */
async function expectNothingKept(key: string): Promise<void> {
  expect(await tempFiles(h)).toEqual([]);
  expect(h.cache.lookup(key)).toBeNull();
  expect(await h.cache.open(key)).toBeNull();
  expect(await h.index.get(key)).toBeUndefined();
  expect(h.engine.running(key)).toBeUndefined();
}

/** Client-facing messages must not leak where the upstream is. */
function expectSafeMessage(err: unknown): void {
  expect(err).toBeInstanceOf(LazyContentError);
  const { message } = err as LazyContentError;
  expect(message).not.toMatch(/127\.0\.0\.1|https?:|\/pkg|tmp|cache/i);
  expect(message).not.toContain(String(upstream.port));
}

interface Fault {
  name: string;
  url: () => string;
  /** Does the source answer before failing (so head resolves and readers get some bytes)? */
  answers: boolean;
  sourceReason: SourceFailureReason | SourceFailureReason[];
  fillReason: FillFailureReason;
  code: LazyContentError['code'];
}

const faults: Fault[] = [
  { name: 'connection refused', url: () => `http://127.0.0.1:${refused}${PATH}`, answers: false, sourceReason: 'network', fillReason: 'no_source', code: 'UPSTREAM_FAILED' },
  { name: '503', url: () => `${upstream.origin}${PATH}?mode=status&code=503`, answers: false, sourceReason: 'status', fillReason: 'no_source', code: 'UPSTREAM_FAILED' },
  { name: '404', url: () => `${upstream.origin}/missing.bin`, answers: false, sourceReason: 'status', fillReason: 'no_source', code: 'UPSTREAM_FAILED' },
  { name: 'response headers never sent', url: () => `${upstream.origin}${PATH}?mode=hang`, answers: false, sourceReason: 'headers_timeout', fillReason: 'no_source', code: 'UPSTREAM_TIMEOUT' },
  { name: 'TLS handshake never answered (connect timeout)', url: () => `https://127.0.0.1:${silent.port}${PATH}`, answers: false, sourceReason: 'connect_timeout', fillReason: 'no_source', code: 'UPSTREAM_TIMEOUT' },
  { name: 'Content-Length differs from the catalog size', url: () => `${upstream.origin}${PATH}?mode=length&declare=${BODY.length - 1}`, answers: false, sourceReason: 'size_mismatch', fillReason: 'no_source', code: 'UPSTREAM_FAILED' },
  { name: 'stalled body', url: () => `${upstream.origin}${PATH}?mode=stall&after=${MiB}`, answers: true, sourceReason: 'body_timeout', fillReason: 'body_timeout', code: 'UPSTREAM_TIMEOUT' },
  { name: 'connection reset mid-body', url: () => `${upstream.origin}${PATH}?mode=reset&after=${MiB}`, answers: true, sourceReason: 'body_cut', fillReason: 'body_cut', code: 'UPSTREAM_FAILED' },
  { name: 'short body (early end)', url: () => `${upstream.origin}${PATH}?mode=short&after=${2 * MiB}`, answers: true, sourceReason: 'body_cut', fillReason: 'body_cut', code: 'UPSTREAM_FAILED' },
  { name: 'corrupt bytes (digest mismatch)', url: () => `${upstream.origin}${PATH}?mode=corrupt&at=${MiB}`, answers: true, sourceReason: 'digest_mismatch', fillReason: 'digest_mismatch', code: 'UPSTREAM_FAILED' },
  { name: 'corrupt last byte (digest mismatch)', url: () => `${upstream.origin}${PATH}?mode=corrupt`, answers: true, sourceReason: 'digest_mismatch', fillReason: 'digest_mismatch', code: 'UPSTREAM_FAILED' },
];

describe('a failing source', () => {
  it.each(faults)('$name: readers are destroyed, nothing is kept, the source cools down', async (fault) => {
    const key = `faults/${fault.name.replace(/\W+/g, '-')}.bin`;
    const src = source(key, fault.url(), BODY, {}, quick());
    const fill = h.engine.fill(key, [src]);
    // Two readers attached before the head, as clients that raced in.
    const readers = [fill.createReader(), fill.createReader()].map(outcome);

    if (fault.answers) {
      await expect(fill.head).resolves.toMatchObject({ size: BODY.length });
    } else {
      const err = await fill.head.catch((e: unknown) => e);
      expectSafeMessage(err);
      expect((err as LazyContentError).code).toBe(fault.code);
    }
    const err = await fill.done.catch((e: unknown) => e);
    expectSafeMessage(err);
    expect((err as LazyContentError).code).toBe(fault.code);

    for (const seen of await Promise.all(readers)) {
      // Never a clean end: the HTTP layer destroys the connection on an error.
      expect(seen.error).toBeInstanceOf(LazyContentError);
      expect(seen.bytes).toBeLessThan(BODY.length);
    }
    await expectNothingKept(key);
    expect(h.engine.cooldowns.isCooling(src.entry)).toBe(true);

    const sourceFailed = h.events.filter((e) => e.name === 'source:failed').map((e) => e.event);
    expect(sourceFailed).toHaveLength(1);
    expect(sourceFailed[0]).toMatchObject({ entryId: src.entry.id, phase: fault.answers ? 'body' : 'head' });
    const reasons = ([] as SourceFailureReason[]).concat(fault.sourceReason);
    expect(reasons).toContain((sourceFailed[0] as { reason: SourceFailureReason }).reason);
    expect(h.events.filter((e) => e.name === 'source:cooled-down')).toHaveLength(1);
    expect(h.events.find((e) => e.name === 'fill:failed')?.event).toMatchObject({ key, reason: fault.fillReason, code: fault.code });
    expect(h.events.some((e) => e.name === 'fill:completed')).toBe(false);
  });

  it('gives a reader that had all but the held-back tail an error, never a clean end, on a digest mismatch', async () => {
    const key = 'faults/tail.bin';
    const src = source(key, `${upstream.origin}${PATH}?mode=corrupt`, BODY);
    const fill = h.engine.fill(key, [src]);
    const seen = await outcome(fill.createReader());
    expect(seen.error).toBeInstanceOf(LazyContentError);
    expect(seen.bytes).toBeLessThanOrEqual(BODY.length - 64 * 1024);
  });

  it('starts a new fill for the next request after a failure', async () => {
    const key = 'faults/retry.bin';
    const bad = source(key, `${upstream.origin}${PATH}?mode=reset&after=1000`, BODY);
    await h.engine.fill(key, [bad]).done.catch(() => undefined);
    const good = source(key, `${upstream.origin}${PATH}`, BODY);
    const fill = h.engine.fill(key, [bad, good]);
    expect(await digestOf(fill.createReader())).toBe(sha256(BODY));
  });
});

describe('alternate sources', () => {
  it('replaces sources that fail before answering by the next one, in order', async () => {
    const key = 'alt/a.bin';
    upstream.put('/alt-a.bin', BODY);
    const first = source(key, `http://127.0.0.1:${refused}/alt-a.bin`, BODY);
    const second = source(key, `${upstream.origin}/alt-a.bin?mode=status&code=502`, BODY);
    const third = source(key, `${upstream.origin}/alt-a.bin`, BODY);
    const before = upstream.requests('/alt-a.bin');
    const fill = h.engine.fill(key, [first, second, third]);
    const head = await fill.head;
    expect(head.entryId).toBe(third.entry.id);
    expect(await digestOf(fill.createReader())).toBe(sha256(BODY));
    // One request to the 502 source, one to the good one.
    expect(upstream.requests('/alt-a.bin') - before).toBe(2);
    const failed = h.events.filter((e) => e.name === 'source:failed').map((e) => e.event);
    expect(failed).toMatchObject([
      { entryId: first.entry.id, reason: 'network', phase: 'head' },
      { entryId: second.entry.id, reason: 'status', status: 502, phase: 'head' },
    ]);
    expect(h.engine.cooldowns.isCooling(first.entry)).toBe(true);
    expect(h.engine.cooldowns.isCooling(third.entry)).toBe(false);
  });

  it('skips a cooling source while another remains, tries cooling ones when all are, and forgets after the cooldown', async () => {
    const key = 'alt/b.bin';
    upstream.put('/alt-b.bin', BODY);
    upstream.put('/alt-b-bad.bin', BODY);
    const bad = source(key, `${upstream.origin}/alt-b-bad.bin?mode=status&code=500`, BODY);
    const good = source(key, `${upstream.origin}/alt-b.bin`, BODY);

    await h.engine.fill(key, [bad]).done.catch(() => undefined);
    expect(upstream.requests('/alt-b-bad.bin')).toBe(1);
    expect(h.engine.cooldowns.isCooling(bad.entry)).toBe(true);

    // Cooling, and another source remains: the bad one is not asked.
    await h.engine.fill(key, [bad, good]).done;
    expect(upstream.requests('/alt-b-bad.bin')).toBe(1);
    await h.cache.delete(key);

    // Every source is cooling: asked anyway rather than failing without trying.
    const again = h.engine.fill(key, [bad]);
    await expect(again.head).rejects.toMatchObject({ code: 'UPSTREAM_FAILED' });
    expect(upstream.requests('/alt-b-bad.bin')).toBe(2);

    // After the cooldown the bad source comes first again.
    clock += 60_001;
    expect(h.engine.cooldowns.isCooling(bad.entry)).toBe(false);
    const goodBefore = upstream.requests('/alt-b.bin');
    await h.engine.fill(key, [bad, good]).done;
    expect(upstream.requests('/alt-b-bad.bin')).toBe(3);
    expect(upstream.requests('/alt-b.bin')).toBe(goodBefore + 1);
  });

  it('reports a timeout when the last source to fail timed out', async () => {
    const key = 'alt/c.bin';
    const refusedSource = source(key, `http://127.0.0.1:${refused}${PATH}`, BODY, {}, quick());
    const hanging = source(key, `${upstream.origin}${PATH}?mode=hang`, BODY, {}, quick());
    await expect(h.engine.fill(key, [refusedSource, hanging]).head).rejects.toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
  });

  it('does not try another source once one has answered and then failed mid-body', async () => {
    const key = 'alt/d.bin';
    upstream.put('/alt-d.bin', BODY);
    const cut = source(key, `${upstream.origin}${PATH}?mode=reset&after=${MiB}`, BODY);
    const good = source(key, `${upstream.origin}/alt-d.bin`, BODY);
    const fill = h.engine.fill(key, [cut, good]);
    await fill.head;
    await expect(fill.done).rejects.toMatchObject({ code: 'UPSTREAM_FAILED' });
    expect(upstream.requests('/alt-d.bin')).toBe(0);
  });
});

describe('bad input', () => {
  it('refuses a key that is not normalised, or no source, before any download', () => {
    const src = source('x.bin', `${upstream.origin}${PATH}`, BODY);
    const before = upstream.requests(PATH);
    expect(() => h.engine.fill('../x.bin', [src])).toThrow(TypeError);
    expect(() => h.engine.fill('a//b', [src])).toThrow(TypeError);
    expect(() => h.engine.fill('x.bin', [])).toThrow(TypeError);
    expect(upstream.requests(PATH)).toBe(before);
  });

  it('refuses a memory window that is not a whole number of bytes of at least 0', async () => {
    for (const bad of [-1, 0.5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '8' as unknown as number]) {
      expect(() => new FillEngine({ cache: h.cache, memoryWindowBytes: bad }), String(bad)).toThrow(RangeError);
    }
    expect(() => new FillEngine({ cache: h.cache, memoryWindowBytes: -1 })).toThrow(/memoryWindowBytes/);
    expect(fillEngineDefaults.memoryWindowBytes).toBe(8 * MiB);
    // 0 (off) and any whole number are fine; a window larger than every file too.
    for (const ok of [0, 1, 64 * 1024, 2 * 1024 * MiB]) {
      const engine = new FillEngine({ cache: h.cache, memoryWindowBytes: ok });
      await engine.close();
    }
  });
});

describe('close', () => {
  it('aborts running fills: readers are destroyed, the temp file removed, nothing cached', async () => {
    const key = 'close/a.bin';
    upstream.put('/close-a.bin', BODY);
    const src = source(key, `${upstream.origin}/close-a.bin?mode=gate&after=${MiB}`, BODY);
    const fill = h.engine.fill(key, [src]);
    const reader = outcome(fill.createReader());
    await upstream.gateReached('/close-a.bin');
    await until(fill, () => fill.bytesWritten > 0);
    await h.engine.close();
    const seen = await reader;
    expect(seen.error).toMatchObject({ code: 'UNAVAILABLE' });
    await expect(fill.done).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(h.events.find((e) => e.name === 'fill:failed')?.event).toMatchObject({ reason: 'aborted' });
    await expectNothingKept(key);
    expect(h.engine.cooldowns.isCooling(src.entry)).toBe(false);
    expect(() => h.engine.fill('close/b.bin', [src])).toThrow(LazyContentError);
    upstream.release('/close-a.bin');
  });

  it('a reader destroyed by its client only detaches', async () => {
    const key = 'close/detach.bin';
    const src = source(key, `${upstream.origin}${PATH}`, BODY);
    const fill = h.engine.fill(key, [src]);
    const leaving = fill.createReader();
    leaving.destroy();
    const staying = await collect(fill.createReader());
    expect(sha256(staying)).toBe(sha256(BODY));
    await fill.done;
  });
});
