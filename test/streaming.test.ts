import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { lazyContent, type LazyContentHandler } from '@lazy-content/express';
import type { CatalogEntryInput } from '@lazy-content/core';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from './helpers/http.js';
import { type FaultServer, refusedPort, startFaultServer } from './upstream/fault-server.js';

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let dir: string;
let upstream: FaultServer;
let handler: LazyContentHandler;
let server: http.Server;
let base: string;
const files = new Map<string, Buffer>();

/** Puts a file upstream and in the catalog; `query` selects the upstream's fault mode. */
async function lazyFile(name: string, size: number, query = '', extra: Partial<CatalogEntryInput> = {}): Promise<Buffer> {
  const data = randomBytes(size);
  files.set(name, data);
  upstream.put(`/up/${name}`, data);
  const catalog = await handler.lazyContent.catalog();
  await catalog.addEntries([
    { path: `s/${name}`, remote: 'up', url: `${upstream.origin}/up/${name}${query}`, size, digest: sha256(data), ...extra },
  ]);
  return data;
}

/** The streamer link the content side redirects to. */
async function linkFor(name: string): Promise<string> {
  const r = await request(base, `/content/s/${name}`);
  expect(r.status).toBe(302);
  const url = new URL(r.headers.location!, base);
  return url.pathname + url.search;
}

/**
 * A GET whose body is collected; resolves with what arrived and whether the response ended cleanly. A
 * connection closed before any response is status 0, not complete.
 */
function get(p: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const req = http.get(`${base}${p}`, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), complete: res.complete }));
      res.on('error', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), complete: false }));
    });
    req.on('error', () => resolve({ status: 0, body: Buffer.alloc(0), complete: false }));
  });
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-streaming-'));
  upstream = await startFaultServer();
  handler = lazyContent({ root: path.join(dir, 'content'), dataDir: path.join(dir, 'data'), logger: false, streamer: { cooldownMs: 60_000 } });
  const catalog = await handler.lazyContent.catalog();
  await catalog.addRemote({ name: 'up', bodyIdleTimeoutMs: 300, headersTimeoutMs: 2000 });
  await catalog.addRemote({ name: 'mirror' });
  server = http.createServer(express().use(handler));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await handler.close();
  await upstream.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function cacheTempFiles(): Promise<string[]> {
  return fsp.readdir(path.join(dir, 'data', 'cache', 'tmp')).catch(() => []);
}

describe('coalesced streaming over HTTP', () => {
  it('serves 50 concurrent clients with one upstream request, every body identical to the source', async () => {
    const data = await lazyFile('fifty.bin', 8 * MiB);
    const link = await linkFor('fifty.bin');
    const results = await Promise.all(Array.from({ length: 50 }, () => get(link)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.complete).toBe(true);
      expect(sha256(r.body)).toBe(sha256(data));
    }
    expect(upstream.requests('/up/fifty.bin')).toBe(1);
  });

  it('gives a client that joins mid-download the whole file, and a range from the growing file', async () => {
    const data = await lazyFile('join.bin', 4 * MiB, '?mode=gate&after=2097152');
    const link = await linkFor('join.bin');
    const first = get(link);
    await upstream.gateReached('/up/join.bin');
    const joined = get(link);
    const ranged = get(link, { range: 'bytes=1000-1999999' });
    upstream.release('/up/join.bin');
    const [a, b, c] = await Promise.all([first, joined, ranged]);
    expect(sha256(a.body)).toBe(sha256(data));
    expect(sha256(b.body)).toBe(sha256(data));
    expect(c.status).toBe(206);
    expect(c.body.equals(data.subarray(1000, 2_000_000))).toBe(true);
    expect(upstream.requests('/up/join.bin')).toBe(1);
  });

  it('sends the headers as soon as the upstream answered, even while every byte is held back for verification', async () => {
    // 4 KiB with a digest: the whole file lies inside the held-back tail, so no body byte can go before the end.
    const data = await lazyFile('early-head.bin', 4096, '?mode=gate&after=1000');
    const link = await linkFor('early-head.bin');
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(`${base}${link}`, { agent: false }, resolve).on('error', reject);
    });
    await upstream.gateReached('/up/early-head.bin');
    // The upstream is still held at its gate: the status and length are already with the client.
    const res = await response;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe('4096');
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => res.on('end', resolve));
    upstream.release('/up/early-head.bin');
    await ended;
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });

  it('lets a fast client and the download finish while a slow client has not read anything', async () => {
    const data = await lazyFile('slow.bin', 6 * MiB);
    const link = await linkFor('slow.bin');
    const completed = once(handler.lazyContent.fills, 'fill:completed');
    let slowRes!: http.IncomingMessage;
    const slowResponded = new Promise<void>((resolve) => {
      http.get(`${base}${link}`, { agent: false }, (res) => {
        slowRes = res;
        res.pause();
        resolve();
      });
    });
    await slowResponded;
    const fast = await get(link);
    expect(sha256(fast.body)).toBe(sha256(data));
    await completed;
    // Only now does the slow client read, and it still gets every byte.
    const chunks: Buffer[] = [];
    slowRes.on('data', (c: Buffer) => chunks.push(c));
    slowRes.resume();
    await once(slowRes, 'end');
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(data));
    expect(upstream.requests('/up/slow.bin')).toBe(1);
  });

  it('finishes and caches the file when every client disconnects mid-download', async () => {
    const data = await lazyFile('left.bin', 3 * MiB, '?mode=gate&after=1048576');
    const link = await linkFor('left.bin');
    const completed = once(handler.lazyContent.fills, 'fill:completed');
    const clients = await Promise.all(
      Array.from({ length: 3 }, () => new Promise<http.ClientRequest>((resolve) => {
        const req = http.get(`${base}${link}`, { agent: false }, (res) => res.once('data', () => resolve(req)));
      })),
    );
    for (const c of clients) c.destroy();
    upstream.release('/up/left.bin');
    await completed;
    const later = await get(link);
    expect(sha256(later.body)).toBe(sha256(data));
    expect(upstream.requests('/up/left.bin')).toBe(1);
  });
});

describe('files served fresh (maxAgeMs)', () => {
  it('fetches again once the cached copy is older than its age, and never schedules a save', async () => {
    const data = await lazyFile('repomd.xml', 2000, '', { maxAgeMs: 1 });
    const link = await linkFor('repomd.xml');
    const completed = once(handler.lazyContent.fills, 'fill:completed');
    expect(sha256((await get(link)).body)).toBe(sha256(data));
    await completed;
    await new Promise((r) => setTimeout(r, 5));
    expect(sha256((await get(link)).body)).toBe(sha256(data));
    expect(upstream.requests('/up/repomd.xml')).toBe(2);
    const tasks = await (await handler.lazyContent.saveQueue()).list({ limit: 1000 });
    expect(tasks.filter((t) => t.path === 's/repomd.xml')).toEqual([]);
  });

  it('serves from the cache while the copy is younger than its age', async () => {
    const data = await lazyFile('young.xml', 2000, '', { maxAgeMs: 3_600_000 });
    const link = await linkFor('young.xml');
    const completed = once(handler.lazyContent.fills, 'fill:completed');
    await get(link);
    await completed;
    expect(sha256((await get(link)).body)).toBe(sha256(data));
    expect(upstream.requests('/up/young.xml')).toBe(1);
  });
});

describe('faults: a client never receives a corrupt or truncated file as complete', () => {
  const faults: Array<[string, string]> = [
    ['wrong bytes (digest mismatch)', '?mode=corrupt'],
    ['a reset mid-body', '?mode=reset&after=1048576'],
    ['a body cut short', '?mode=short&after=1048576'],
    ['a stalled body', '?mode=stall&after=1048576'],
  ];
  for (const [what, query] of faults) {
    it(`${what}: the client gets a cut connection or a 502, nothing is cached, the next request tries again`, async () => {
      const name = `fault-${query.replace(/\W/g, '')}.bin`;
      const data = await lazyFile(name, 2 * MiB, query);
      const link = await linkFor(name);
      const failed = once(handler.lazyContent.fills, 'fill:failed');
      const r = await get(link);
      // Whichever way it ends, it never ends as a complete 200.
      if (r.status === 200) expect(r.complete).toBe(false);
      else expect([0, 502, 504]).toContain(r.status);
      expect(r.body.length).toBeLessThan(data.length);
      await failed;
      expect(handler.lazyContent.fills.cache.lookup(`s/${name}`)).toBeNull();
      expect(await cacheTempFiles()).toEqual([]);
      // The source is cooled down but it is the only one, so the next request tries it again.
      const failedAgain = once(handler.lazyContent.fills, 'fill:failed');
      await get(link);
      expect(upstream.requests(`/up/${name}`)).toBe(2);
      // That attempt fails the same way; its temp file is gone once it says so (the next test counts them).
      await failedAgain;
    });
  }

  it('replaces a failing source by the next one before any byte is sent', async () => {
    const data = randomBytes(MiB);
    upstream.put('/up/alt-good.bin', data);
    const catalog = await handler.lazyContent.catalog();
    await catalog.addEntries([
      { path: 's/alt.bin', remote: 'up', url: `${upstream.origin}/up/alt-bad.bin?mode=status&code=503`, size: data.length, digest: sha256(data) },
      { path: 's/alt.bin', remote: 'mirror', url: `${upstream.origin}/up/alt-good.bin`, size: data.length, digest: sha256(data), priority: 1 },
    ]);
    const r = await get(await linkFor('alt.bin'));
    expect(r.status).toBe(200);
    expect(sha256(r.body)).toBe(sha256(data));
    expect(upstream.requests('/up/alt-bad.bin')).toBe(1);
    expect(upstream.requests('/up/alt-good.bin')).toBe(1);
  });

  it('answers 502 when every source fails before answering (refused, 5xx)', async () => {
    const port = await refusedPort();
    const catalog = await handler.lazyContent.catalog();
    await catalog.addEntries([
      { path: 's/none.bin', remote: 'up', url: `http://127.0.0.1:${port}/none.bin`, size: 10 },
      { path: 's/none.bin', remote: 'mirror', url: `${upstream.origin}/up/none.bin?mode=status&code=500`, size: 10, priority: 1 },
    ]);
    const r = await request(base, await linkFor('none.bin'));
    expect(r.status).toBe(502);
    expect(r.body.toString()).not.toMatch(/127\.0\.0\.1|none\.bin|ECONN/);
  });
});
