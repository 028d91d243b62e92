import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { importRepository, type RepositoryImportProgress } from '@lazy-content/core';
import { lazyContent } from '@lazy-content/express';
import express from 'express';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { entriesByPath, fileRepo, instance, type Instance, type RepoServer, sha256, snapshot, startRepoServer } from './repo-server.js';

const BASE = '/pulp/demo/';
let upstream: RepoServer;
let h: Instance;

const files = () =>
  new Map<string, Buffer>([
    ['a.txt', Buffer.from('alpha\n')],
    ['dir/b.bin', randomBytes(3000)],
    ['dir/sub/c.iso', randomBytes(10_000)],
    ['odd name %41+#?.txt', Buffer.from('odd\n')],
  ]);

beforeAll(async () => {
  upstream = await startRepoServer();
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(async () => {
  upstream.requireAuthorization = null;
  h = await instance();
});
afterEach(async () => {
  await h.close();
});

const importDemo = (extra: Partial<Parameters<typeof importRepository>[1]> = {}) =>
  importRepository(h.lc, { url: `${upstream.origin}${BASE}`, type: 'file', prefix: 'demo-file/', remote: 'demo-file', ...extra });

describe('importing a Pulp file repository', () => {
  it('adds every file of PULP_MANIFEST with its URL, size and sha256, and the manifest served fresh', async () => {
    const content = files();
    upstream.publish(BASE, fileRepo(content));
    const result = await importDemo();
    expect(result).toMatchObject({ added: 5, updated: 0, unchanged: 0, removed: 0, total: 5 });

    const catalog = await h.lc.catalog();
    for (const [rel, bytes] of content) {
      const [entry, ...others] = await catalog.lookup(`demo-file/${rel}`);
      expect(others).toEqual([]);
      expect(entry).toMatchObject({ size: bytes.length, digestAlgorithm: 'sha256', digest: sha256(bytes), maxAgeMs: null });
      // The URL names the file exactly, special characters escaped.
      expect(decodeURIComponent(new URL(entry!.url).pathname)).toBe(`${BASE}${rel}`);
    }
    const [manifest] = await catalog.lookup('demo-file/PULP_MANIFEST');
    expect(manifest).toMatchObject({ url: `${upstream.origin}${BASE}PULP_MANIFEST`, maxAgeMs: 300_000, digest: null, size: null });
    expect(await catalog.getRemote('demo-file')).toMatchObject({ name: 'demo-file', policy: 'on_demand' });
  });

  it('is idempotent: importing again with nothing changed changes nothing', async () => {
    upstream.publish(BASE, fileRepo(files()));
    await importDemo();
    const before = await snapshot(h.lc);
    const again = await importDemo();
    expect(again).toMatchObject({ added: 0, updated: 0, unchanged: 5, removed: 0, total: 5 });
    expect(await snapshot(h.lc)).toEqual(before);
  });

  it('follows upstream changes: a changed file is updated, a new one added, a gone one removed', async () => {
    const content = files();
    upstream.publish(BASE, fileRepo(content));
    await importDemo();
    content.set('a.txt', Buffer.from('alpha, second edition\n'));
    content.set('new/d.txt', Buffer.from('delta\n'));
    content.delete('dir/b.bin');
    upstream.publish(BASE, fileRepo(content));

    const result = await importDemo();
    expect(result).toMatchObject({ added: 1, updated: 1, unchanged: 3, removed: 1, total: 5 });
    const entries = await entriesByPath(h.lc, 'demo-file', 'demo-file/');
    expect([...entries.keys()].sort()).toEqual(['PULP_MANIFEST', ...content.keys()].map((k) => `demo-file/${k}`).sort());
    expect(entries.get('demo-file/a.txt')).toMatchObject({ digest: sha256('alpha, second edition\n'), size: 22 });
  });

  it('removes only entries of its own remote and prefix', async () => {
    upstream.publish(BASE, fileRepo(files()));
    await importDemo();
    const catalog = await h.lc.catalog();
    await catalog.addRemote({ name: 'other' });
    await catalog.addEntries([
      { path: 'demo-file/stays-other-remote.txt', remote: 'other', url: `${upstream.origin}/x` },
      { path: 'demo-file-2/stays-other-prefix.txt', remote: 'demo-file', url: `${upstream.origin}/y` },
      { path: 'DEMO-FILE/stays-other-case.txt', remote: 'demo-file', url: `${upstream.origin}/z` },
      { path: 'demo-file/goes.txt', remote: 'demo-file', url: `${upstream.origin}/w` },
    ]);
    const result = await importDemo();
    expect(result).toMatchObject({ added: 0, removed: 1, unchanged: 5 });
    expect(await catalog.lookup('demo-file/goes.txt')).toEqual([]);
    for (const path of ['demo-file/stays-other-remote.txt', 'demo-file-2/stays-other-prefix.txt', 'DEMO-FILE/stays-other-case.txt']) {
      expect(await catalog.lookup(path)).toHaveLength(1);
    }
  });

  it('reports progress while reading and writing', async () => {
    const many = new Map<string, Buffer>();
    for (let i = 0; i < 2500; i++) many.set(`many/f${i}.txt`, Buffer.from(`file ${i}\n`));
    upstream.publish(BASE, fileRepo(many));
    const seen: RepositoryImportProgress[] = [];
    const result = await importDemo({ onProgress: (p) => seen.push(p) });
    expect(result.total).toBe(2501);
    const reading = seen.filter((p) => p.phase === 'reading');
    expect(reading.map((p) => p.found)).toEqual(expect.arrayContaining([1000, 2000, 2501]));
    expect(reading.at(-1)).toMatchObject({ found: 2501, file: 'PULP_MANIFEST' });
    expect(seen.at(-1)).toEqual({ phase: 'writing', entries: 2501 });
  });
});

describe('policies', () => {
  it('immediate: downloads and saves every file during the import, reporting progress', async () => {
    const content = files();
    upstream.publish(BASE, fileRepo(content));
    const seen: RepositoryImportProgress[] = [];
    const result = await importDemo({ policy: 'immediate', onProgress: (p) => seen.push(p) });
    expect(result.progress).toMatchObject({ toDownload: 4, saved: 4, failed: 0 });
    expect(seen.filter((p) => p.phase === 'downloading').at(-1)).toMatchObject({ phase: 'downloading', toDownload: 4, saved: 4 });
    for (const [rel, bytes] of content) expect((await h.lc.store.stat(`demo-file/${rel}`))?.size).toBe(bytes.length);
    // The manifest is served fresh, never saved.
    expect(await h.lc.store.stat('demo-file/PULP_MANIFEST')).toBeNull();
  });

  it('a file changed upstream replaces its saved copy', async () => {
    const content = files();
    upstream.publish(BASE, fileRepo(content));
    await importDemo({ policy: 'immediate' });
    const changed = Buffer.from('alpha, changed\n');
    content.set('a.txt', changed);
    upstream.publish(BASE, fileRepo(content));

    const result = await importDemo();
    expect(result).toMatchObject({ updated: 1, progress: { toDownload: 1, saved: 1 } });
    const file = await h.lc.store.open('demo-file/a.txt');
    expect((await file!.readAll()).toString()).toBe(changed.toString());
    await file!.close();
  });

  it('updates the policy of an existing remote when given', async () => {
    upstream.publish(BASE, fileRepo(files()));
    await importDemo();
    const result = await importDemo({ policy: 'background' });
    expect(result.progress.scheduled).toBe(4);
    expect(await (await h.lc.catalog()).getRemote('demo-file')).toMatchObject({ policy: 'background' });
  });
});

describe('remote settings', () => {
  it('reads the repository with the remote settings given, and saves them to the remote', async () => {
    upstream.publish(BASE, fileRepo(files()));
    upstream.requireAuthorization = `Basic ${Buffer.from('reader:s3cret').toString('base64')}`;
    await expect(importDemo()).rejects.toMatchObject({ code: 'UPSTREAM_FAILED', message: expect.stringMatching(/PULP_MANIFEST: the upstream answered 401/) });
    expect(await snapshot(h.lc)).toEqual({ remotes: [], entries: [] });

    const result = await importDemo({ remoteSettings: { basicAuth: { username: 'reader', password: 's3cret' } } });
    expect(result.added).toBe(5);
    expect(await (await h.lc.catalog()).getRemote('demo-file')).toMatchObject({ basicAuth: { username: 'reader', password: 'set' } });
    // Next time the saved remote settings are enough, and the remote is left as it is.
    const saved = await (await h.lc.catalog()).getRemote('demo-file');
    expect(await importDemo({ remoteSettings: { basicAuth: { username: 'reader', password: 's3cret' } } })).toMatchObject({ unchanged: 5 });
    expect(await importDemo()).toMatchObject({ unchanged: 5 });
    expect((await (await h.lc.catalog()).getRemote('demo-file'))?.updatedAt).toEqual(saved?.updatedAt);
  });

  it('checks its options', async () => {
    await expect(importDemo({ url: 'ftp://example/' })).rejects.toThrow(/option "url"/);
    await expect(importDemo({ type: 'deb' as 'file' })).rejects.toThrow(/option "type" must be one of file, yum/);
    await expect(importDemo({ prefix: '../up/' })).rejects.toThrow(/option "prefix"/);
    await expect(importDemo({ maxAgeMs: -1 })).rejects.toThrow(/option "maxAgeMs"/);
  });
});

describe('a malformed PULP_MANIFEST', () => {
  const good = 'a.txt,' + sha256('alpha\n') + ',6';
  const cases: Array<[string, string, RegExp]> = [
    ['too few fields', 'b.txt,123', /line 2: expected "relative\/path,sha256,size", got 2 fields/],
    ['too many fields', `b,c.txt,${sha256('x')},1`, /line 2: expected .* got 4 fields/],
    ['a sha256 that is not hex', `b.txt,${'z'.repeat(64)},1`, /line 2: sha256 "z+" is not 64 hexadecimal digits/],
    ['a sha256 of the wrong length', `b.txt,${sha256('x').slice(1)},1`, /line 2: sha256 .* is not 64 hexadecimal digits/],
    ['a size that is not a whole number', `b.txt,${sha256('x')},1.5`, /line 2: size "1.5" is not a whole number of bytes/],
    ['a negative size', `b.txt,${sha256('x')},-1`, /line 2: size "-1" is not a whole number/],
    ['an empty size', `b.txt,${sha256('x')},`, /line 2: size "" is not a whole number/],
    ['a path outside the base', `../escape.txt,${sha256('x')},1`, /line 2: path "..\/escape.txt" leads outside the repository/],
    ['a path that climbs out', `dir/../../escape.txt,${sha256('x')},1`, /line 2: .* leads outside the repository/],
    ['a folder', `dir/,${sha256('x')},1`, /line 2: path "dir\/" names a folder, not a file/],
    ['a path that resolves to a folder', `dir/sub/..,${sha256('x')},1`, /line 2: .* names a folder/],
    ['an absolute path', `/etc/passwd,${sha256('x')},1`, /line 2: path "\/etc\/passwd" is absolute/],
    ['an empty path', `,${sha256('x')},1`, /line 2: the path is empty/],
    ['a path listed twice', `./a.txt,${sha256('x')},1`, /line 2: path ".\/a.txt" is listed already, on line 1/],
  ];

  it.each(cases)('%s: a clear error naming the line, and nothing written', async (_title, line, message) => {
    upstream.publish(BASE, fileRepo(files()));
    await importDemo();
    const before = await snapshot(h.lc);
    upstream.put(`${BASE}PULP_MANIFEST`, `${good}\n${line}\n${good.replace('a.txt', 'later.txt')}\n`);
    await expect(importDemo({ policy: 'background' })).rejects.toMatchObject({ code: 'UPSTREAM_FAILED', message: expect.stringMatching(message) });
    expect(await snapshot(h.lc)).toEqual(before);
  });

  it('counts blank lines and skips them and comments; CRLF is fine', async () => {
    upstream.put(`${BASE}PULP_MANIFEST`, `# a comment\r\n\r\n${good}\r\nb.txt,nothex,1\r\n`);
    await expect(importDemo()).rejects.toThrow(/PULP_MANIFEST line 4: sha256 "nothex"/);
    expect(await snapshot(h.lc)).toEqual({ remotes: [], entries: [] });
  });

  it('a missing manifest fails the import and creates no remote', async () => {
    upstream.remove(`${BASE}PULP_MANIFEST`);
    await expect(importDemo()).rejects.toThrow(/could not fetch http:\/\/127\.0\.0\.1:\d+\/pulp\/demo\/PULP_MANIFEST: the upstream answered 404/);
    expect(await snapshot(h.lc)).toEqual({ remotes: [], entries: [] });
  });
});

describe('end to end through Express', () => {
  let server: Server;
  let app: string;
  let handler: ReturnType<typeof lazyContent>;

  beforeEach(async () => {
    handler = lazyContent(h.lc);
    const ex = express();
    ex.use(handler);
    server = ex.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    app = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('an imported path redirects to the streamer, which returns the upstream bytes', async () => {
    const content = files();
    upstream.publish(BASE, fileRepo(content));
    await importRepository(handler.lazyContent, { url: `${upstream.origin}${BASE}`, type: 'file', prefix: 'demo-file/', remote: 'demo-file' });

    for (const [rel, bytes] of content) {
      const url = `${app}/content/demo-file/${rel.split('/').map(encodeURIComponent).join('/')}`;
      const first = await fetch(url, { redirect: 'manual' });
      expect(first.status).toBe(302);
      const location = first.headers.get('location')!;
      const second = await fetch(new URL(location, app));
      expect(second.status).toBe(200);
      expect(Buffer.from(await second.arrayBuffer()).equals(bytes)).toBe(true);
    }
    expect((await fetch(`${app}/content/demo-file/not-there.txt`, { redirect: 'manual' })).status).toBe(404);
  });

  it('after a file changed upstream and an import, serves the new bytes, not the copy saved before', async () => {
    const content = files();
    upstream.publish(BASE, fileRepo(content));
    await importRepository(handler.lazyContent, { url: `${upstream.origin}${BASE}`, type: 'file', prefix: 'demo-file/', remote: 'demo-file' });
    const get = async () => Buffer.from(await (await fetch(`${app}/content/demo-file/a.txt`)).arrayBuffer()).toString();
    expect(await get()).toBe('alpha\n');
    // on_demand: the first use schedules a save; wait for it (the file then comes from the store).
    while ((await h.lc.store.stat('demo-file/a.txt')) === null) await new Promise((r) => setTimeout(r, 20));

    content.set('a.txt', Buffer.from('alpha, changed\n'));
    upstream.publish(BASE, fileRepo(content));
    expect(await importRepository(handler.lazyContent, { url: `${upstream.origin}${BASE}`, type: 'file', prefix: 'demo-file/', remote: 'demo-file' })).toMatchObject({ updated: 1 });
    expect(await get()).toBe('alpha, changed\n');
  });
});
