import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HmacUrlSigner, LINK_PARAMS, StreamerLinks, type LazyContentOptions } from '@lazy-content/core';
import { APP_HELLO, APP_OWNED, type AdapterApp, type AdapterFactory } from '../adapters.js';
import { request } from '../helpers/http.js';
import { type FaultServer, startFaultServer } from '../upstream/fault-server.js';
import { createHash } from 'node:crypto';

/** A folder of saved files, and the bytes each one holds. */
export async function savedFolder(): Promise<{ root: string; dataDir: string; files: Record<string, Buffer>; remove(): Promise<void> }> {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-conformance-'));
  const root = path.join(base, 'content');
  const dataDir = path.join(base, 'data');
  const files: Record<string, Buffer> = {
    'small.txt': Buffer.from('hello, lazy content\n'),
    'big.bin': randomBytes(1024 * 1024 + 17),
    'dir/nested/pkg-1.0.rpm': randomBytes(4096),
    'a b.txt': Buffer.from('a space in the name'),
    'empty.txt': Buffer.alloc(0),
  };
  for (const [name, data] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await fsp.writeFile(path.join(root, name), data);
  }
  return { root, dataDir, files, remove: () => fsp.rm(base, { recursive: true, force: true }) };
}

/** The HMAC secret of the apps under test, so that tests can make links of their own (expired, moved). */
const SIGNING_SECRET = 'conformance-suite-signing-secret-0123456789';
const testLinks = (expiresInSeconds = 90) =>
  new StreamerLinks(new HmacUrlSigner(Buffer.from(SIGNING_SECRET)), { prefix: '/_lazy/stream/', expiresInSeconds, bindClientAddress: false });

/** Splits a multipart/byteranges body into its parts' Content-Range and bytes. */
function multipartParts(body: Buffer, boundary: string): Array<{ range: string; data: Buffer }> {
  const parts: Array<{ range: string; data: Buffer }> = [];
  const text = body.toString('latin1');
  for (const chunk of text.split(`--${boundary}`).slice(1)) {
    if (chunk.startsWith('--')) break;
    const headEnd = chunk.indexOf('\r\n\r\n');
    const head = chunk.slice(0, headEnd);
    let data = chunk.slice(headEnd + 4);
    if (data.endsWith('\r\n')) data = data.slice(0, -2);
    parts.push({ range: /content-range: (.*)/i.exec(head)?.[1]?.trim() ?? '', data: Buffer.from(data, 'latin1') });
  }
  return parts;
}

/**
 * The HTTP behaviour every adapter must show, over real sockets. Each framework's test file calls this with
 * its factory; a behaviour is written once here, never per adapter.
 */
export function conformanceSuite(name: string, factory: AdapterFactory): void {
  describe(`conformance: ${name}`, () => {
    let folder: Awaited<ReturnType<typeof savedFolder>>;
    const apps: AdapterApp[] = [];
    let app: AdapterApp;
    let upstream: FaultServer;
    const remoteFile = randomBytes(3 * 1024 * 1024 + 5);
    const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

    /** GET that follows one redirect, as a package manager does. */
    async function fetchFollowing(p: string, headers: Record<string, string> = {}) {
      const first = await request(app.url, p, { headers });
      if (first.status !== 302) return { first, final: first };
      const location = new URL(first.headers.location!, app.url);
      return { first, final: await request(app.url, location.pathname + location.search, { headers }) };
    }

    async function start(options: LazyContentOptions): Promise<AdapterApp> {
      const started = await factory({
        root: folder.root,
        dataDir: folder.dataDir,
        logger: false,
        signing: { secret: SIGNING_SECRET },
        ...options,
      });
      apps.push(started);
      return started;
    }

    beforeAll(async () => {
      folder = await savedFolder();
      upstream = await startFaultServer();
      for (const name of ['streamed.bin', 'ranged.bin', 'head.bin', 'inline.bin', 'cached.bin']) upstream.put(`/repo/${name}`, remoteFile);
      upstream.put('/repo/unknown-size.bin', remoteFile);
      app = await start({});
      const catalog = await app.core.catalog();
      if (!(await catalog.getRemote('conformance'))) await catalog.addRemote({ name: 'conformance' });
      const digest = sha256(remoteFile);
      await catalog.addEntries([
        { path: 'lazy/pkg-2.0.rpm', remote: 'conformance', url: 'http://127.0.0.1:9/pkg-2.0.rpm', size: 1000 },
        // Saved already: the store wins over the catalog.
        { path: 'small.txt', remote: 'conformance', url: 'http://127.0.0.1:9/small.txt' },
        ...['streamed.bin', 'ranged.bin', 'head.bin', 'inline.bin', 'cached.bin'].map((name) => ({
          path: `remote/${name}`,
          remote: 'conformance',
          url: `${upstream.origin}/repo/${name}`,
          size: remoteFile.length,
          digest,
        })),
        { path: 'remote/unknown-size.bin', remote: 'conformance', url: `${upstream.origin}/repo/unknown-size.bin?mode=chunked` },
        { path: 'remote/broken.bin', remote: 'conformance', url: `${upstream.origin}/repo/missing.bin` },
      ]);
    });
    afterAll(async () => {
      await Promise.all(apps.map((a) => a.close()));
      await upstream.close();
      await folder.remove();
    });

    it('serves a small file with type, length and validators', async () => {
      const r = await request(app.url, '/content/small.txt');
      expect(r.status).toBe(200);
      expect(r.body.equals(folder.files['small.txt']!)).toBe(true);
      expect(r.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(r.headers['content-length']).toBe(String(folder.files['small.txt']!.length));
      expect(r.headers['accept-ranges']).toBe('bytes');
      expect(r.headers.etag).toMatch(/^"[^"]+"$/);
      expect(r.headers['last-modified']).toMatch(/GMT$/);
      expect(r.headers['cache-control']).toBe('public, max-age=0');
    });

    it('streams a large file byte for byte, also to many clients at once', async () => {
      const results = await Promise.all(Array.from({ length: 12 }, () => request(app.url, '/content/big.bin')));
      for (const r of results) {
        expect(r.status).toBe(200);
        expect(r.body.equals(folder.files['big.bin']!)).toBe(true);
      }
    });

    it('serves nested paths, encoded names and empty files', async () => {
      const nested = await request(app.url, '/content/dir/nested/pkg-1.0.rpm');
      expect(nested.status).toBe(200);
      expect(nested.body.equals(folder.files['dir/nested/pkg-1.0.rpm']!)).toBe(true);
      expect(nested.headers['content-type']).toBe('application/x-redhat-package-manager');
      const spaced = await request(app.url, '/content/a%20b.txt?ignored=1');
      expect(spaced.body.toString()).toBe('a space in the name');
      const empty = await request(app.url, '/content/empty.txt');
      expect(empty.status).toBe(200);
      expect(empty.headers['content-length']).toBe('0');
      expect(empty.body.length).toBe(0);
    });

    it('answers HEAD with the headers of GET and no body', async () => {
      const get = await request(app.url, '/content/big.bin');
      const head = await request(app.url, '/content/big.bin', { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      for (const h of ['content-length', 'content-type', 'etag', 'last-modified', 'accept-ranges']) {
        expect(head.headers[h]).toBe(get.headers[h]);
      }
    });

    it('answers a single range with 206 and Content-Range', async () => {
      const big = folder.files['big.bin']!;
      const r = await request(app.url, '/content/big.bin', { headers: { range: 'bytes=1000-299999' } });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes 1000-299999/${big.length}`);
      expect(r.headers['content-length']).toBe('299000');
      expect(r.body.equals(big.subarray(1000, 300000))).toBe(true);
      const suffix = await request(app.url, '/content/small.txt', { headers: { range: 'bytes=-6' } });
      expect(suffix.status).toBe(206);
      expect(suffix.body.toString()).toBe('ntent\n');
    });

    it('answers several ranges as multipart/byteranges', async () => {
      const big = folder.files['big.bin']!;
      const r = await request(app.url, '/content/big.bin', { headers: { range: 'bytes=0-9,500000-500099,-5' } });
      expect(r.status).toBe(206);
      const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(r.headers['content-type'] ?? '')?.[1];
      expect(boundary).toBeTruthy();
      expect(Number(r.headers['content-length'])).toBe(r.body.length);
      const parts = multipartParts(r.body, boundary!);
      expect(parts.map((p) => p.range)).toEqual([
        `bytes 0-9/${big.length}`,
        `bytes 500000-500099/${big.length}`,
        `bytes ${big.length - 5}-${big.length - 1}/${big.length}`,
      ]);
      expect(parts[0]!.data.equals(big.subarray(0, 10))).toBe(true);
      expect(parts[1]!.data.equals(big.subarray(500000, 500100))).toBe(true);
      expect(parts[2]!.data.equals(big.subarray(big.length - 5))).toBe(true);
    });

    it('answers an unsatisfiable range with 416 and bytes */size', async () => {
      const r = await request(app.url, '/content/small.txt', { headers: { range: 'bytes=1000-2000' } });
      expect(r.status).toBe(416);
      expect(r.headers['content-range']).toBe(`bytes */${folder.files['small.txt']!.length}`);
    });

    it('answers 304 to If-None-Match and If-Modified-Since, and ignores a stale If-Range', async () => {
      const first = await request(app.url, '/content/big.bin');
      const byTag = await request(app.url, '/content/big.bin', { headers: { 'if-none-match': first.headers.etag! } });
      expect(byTag.status).toBe(304);
      expect(byTag.body.length).toBe(0);
      expect(byTag.headers.etag).toBe(first.headers.etag);
      const byDate = await request(app.url, '/content/big.bin', {
        headers: { 'if-modified-since': first.headers['last-modified']! },
      });
      expect(byDate.status).toBe(304);
      const stale = await request(app.url, '/content/small.txt', { headers: { range: 'bytes=0-1', 'if-range': '"old"' } });
      expect(stale.status).toBe(200);
      expect(stale.body.equals(folder.files['small.txt']!)).toBe(true);
      const failed = await request(app.url, '/content/small.txt', { headers: { 'if-match': '"old"' } });
      expect(failed.status).toBe(412);
    });

    it('answers 400 to traversal, NUL and bad encodings, never serving outside the root', async () => {
      for (const p of [
        '/content/../../../../etc/passwd',
        '/content/%2e%2e/%2e%2e/etc/passwd',
        '/content/dir/..%2f..%2f..%2fetc%2fpasswd',
        '/content/small.txt%00.png',
        '/content/%E0%A4%A',
        '/content/a%5c..%5c..%5cb',
      ]) {
        const r = await request(app.url, p);
        expect(r.status, p).toBe(400);
        expect(r.body.toString(), p).not.toContain('root:');
        expect(r.body.toString(), p).not.toContain(folder.root);
      }
    });

    it('answers 404 for a missing file and 405 with Allow for other methods', async () => {
      const missing = await request(app.url, '/content/nope.txt');
      expect(missing.status).toBe(404);
      expect(missing.body.toString()).not.toContain(folder.root);
      const post = await request(app.url, '/content/small.txt', { method: 'POST' });
      expect(post.status).toBe(405);
      expect(post.headers.allow).toBe('GET, HEAD');
    });

    it("leaves the app's own routes alone", async () => {
      const r = await request(app.url, '/app/hello');
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(APP_HELLO);
    });

    it('passes missing files and other methods to the app when configured to', async () => {
      const passing = await start({ notFound: 'pass', otherMethods: 'pass' });
      const get = await request(passing.url, '/content/app-owned');
      expect(get.status).toBe(200);
      expect(get.body.toString()).toBe(APP_OWNED);
      const post = await request(passing.url, '/content/app-owned', { method: 'POST' });
      expect(post.status).toBeLessThan(300);
      expect(post.body.toString()).toBe(APP_OWNED);
      const saved = await request(passing.url, '/content/small.txt');
      expect(saved.body.equals(folder.files['small.txt']!)).toBe(true);
    });

    it('redirects a cataloged, unsaved file to the streamer with a signed, expiring, uncacheable link', async () => {
      for (const method of ['GET', 'HEAD']) {
        const r = await request(app.url, '/content/lazy/pkg-2.0.rpm', { method });
        expect(r.status, method).toBe(302);
        expect(r.headers['cache-control']).toBe('no-store');
        const location = new URL(r.headers.location!, app.url);
        expect(location.pathname).toBe('/_lazy/stream/lazy/pkg-2.0.rpm');
        expect(Number(location.searchParams.get(LINK_PARAMS.expires))).toBeGreaterThan(Date.now() / 1000);
        expect(location.searchParams.get(LINK_PARAMS.signature)).toMatch(/^[\w-]{43}$/);
        // The client is never told where the file comes from.
        expect(JSON.stringify(r.headers)).not.toContain('127.0.0.1:9');
      }
      expect((await request(app.url, '/content/small.txt')).status).toBe(200);
    });

    it('refuses streamer requests whose link is missing, forged, expired or moved to another path', async () => {
      const good = new URL((await request(app.url, '/content/lazy/pkg-2.0.rpm')).headers.location!, app.url);
      const sig = good.searchParams.get(LINK_PARAMS.signature)!;
      const variants: Array<[string, string]> = [
        ['unsigned', '/_lazy/stream/lazy/pkg-2.0.rpm'],
        ['forged', `${good.pathname}?${LINK_PARAMS.expires}=${good.searchParams.get(LINK_PARAMS.expires)}&${LINK_PARAMS.signature}=${sig.slice(0, -2)}xx`],
        ['truncated', `${good.pathname}?${LINK_PARAMS.expires}=${good.searchParams.get(LINK_PARAMS.expires)}&${LINK_PARAMS.signature}=${sig.slice(0, 20)}`],
        ['moved', `/_lazy/stream/small.txt${good.search}`],
        ['expired', testLinks(-10).create('lazy/pkg-2.0.rpm', undefined)],
        ['another secret', new StreamerLinks(new HmacUrlSigner(Buffer.alloc(32, 7)), { prefix: '/_lazy/stream/', expiresInSeconds: 90, bindClientAddress: false }).create('lazy/pkg-2.0.rpm', undefined)],
      ];
      for (const [what, target] of variants) {
        const r = await request(app.url, target);
        expect(r.status, what).toBe(403);
        expect(r.body.toString(), what).toMatch(/link/i);
      }
      expect((await request(app.url, '/_lazy/stream/%2e%2e/x')).status).toBe(400);
    });

    it('serves a saved file through a valid streamer link (a save that landed after the redirect)', async () => {
      const r = await request(app.url, testLinks().create('small.txt', undefined));
      expect(r.status).toBe(200);
      expect(r.body.equals(folder.files['small.txt']!)).toBe(true);
    });

    it('follows the redirect to the streamer and streams the file from the upstream, once', async () => {
      const { first, final } = await fetchFollowing('/content/remote/streamed.bin');
      expect(first.status).toBe(302);
      expect(final.status).toBe(200);
      expect(final.headers['content-length']).toBe(String(remoteFile.length));
      // The catalog has no type for it, so the upstream's is passed on.
      expect(final.headers['content-type']).toBe('application/x-test');
      expect(sha256(final.body)).toBe(sha256(remoteFile));
      // Later requests come from the cache, with validators; the upstream saw one request.
      const again = await fetchFollowing('/content/remote/streamed.bin');
      expect(again.final.status).toBe(200);
      expect(sha256(again.final.body)).toBe(sha256(remoteFile));
      expect(again.final.headers.etag).toBeTruthy();
      const notModified = await fetchFollowing('/content/remote/streamed.bin', { 'if-none-match': again.final.headers.etag! });
      expect(notModified.final.status).toBe(304);
      expect(upstream.requests('/repo/streamed.bin')).toBe(1);
    });

    it('answers a range of an uncached file with 206 while downloading the whole file once', async () => {
      const { final } = await fetchFollowing('/content/remote/ranged.bin', { range: 'bytes=100-199' });
      expect(final.status).toBe(206);
      expect(final.headers['content-range']).toBe(`bytes 100-199/${remoteFile.length}`);
      expect(final.body.equals(remoteFile.subarray(100, 200))).toBe(true);
      expect(upstream.lastHeaders('/repo/ranged.bin')?.range).toBeUndefined();
      const whole = await fetchFollowing('/content/remote/ranged.bin');
      expect(sha256(whole.final.body)).toBe(sha256(remoteFile));
      expect(upstream.requests('/repo/ranged.bin')).toBe(1);
    });

    it('answers HEAD from the catalog when the size is known, without downloading', async () => {
      const first = await request(app.url, '/content/remote/head.bin', { method: 'HEAD' });
      expect(first.status).toBe(302);
      const location = new URL(first.headers.location!, app.url);
      const head = await request(app.url, location.pathname + location.search, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe(String(remoteFile.length));
      expect(head.body.length).toBe(0);
      expect(upstream.requests('/repo/head.bin')).toBe(0);
    });

    it('streams a file of unknown size without Content-Length', async () => {
      const { final } = await fetchFollowing('/content/remote/unknown-size.bin');
      expect(final.status).toBe(200);
      expect(final.headers['content-length']).toBeUndefined();
      expect(sha256(final.body)).toBe(sha256(remoteFile));
    });

    it('answers 502 when no source can deliver, without revealing the upstream', async () => {
      const { final } = await fetchFollowing('/content/remote/broken.bin');
      expect(final.status).toBe(502);
      expect(final.body.toString()).not.toContain(upstream.origin);
      expect(final.body.toString()).not.toContain('/repo/');
    });

    it('streams in the same request with streamer.inline', async () => {
      const inline = await start({ streamer: { inline: true } });
      const r = await request(inline.url, '/content/remote/inline.bin');
      expect(r.status).toBe(200);
      expect(sha256(r.body)).toBe(sha256(remoteFile));
    });

    it('serves under another prefix', async () => {
      const other = await start({ prefix: '/pulp/content/' });
      expect((await request(other.url, '/pulp/content/small.txt')).status).toBe(200);
      expect((await request(other.url, '/app/hello')).body.toString()).toBe(APP_HELLO);
    });
  });
}
