import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Catalog, catalogMigrations, LazyContentError, openCatalogDatabase, SecretBox } from '@lazy-content/core';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresAvailable, postgresSchema } from './helpers/services.js';

const backends: Array<[string, () => Promise<{ url: string; cleanup(): Promise<void> } | null>]> = [
  [
    'SQLite',
    async () => {
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-catalog-'));
      return { url: path.join(dir, 'catalog.sqlite'), cleanup: () => fsp.rm(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      if (!(await postgresAvailable())) return null;
      const s = await postgresSchema('catalog');
      return { url: s.url, cleanup: s.drop };
    },
  ],
];

for (const [name, open] of backends) {
  describe(`catalog on ${name}`, () => {
    let backend: { url: string; cleanup(): Promise<void> } | null = null;
    let ds: DataSource;
    let catalog: Catalog;
    const key = randomBytes(32);

    beforeAll(async () => {
      backend = await open();
      if (!backend) return;
      ds = (await openCatalogDatabase({ url: backend.url, runMigrations: true, dataDir: os.tmpdir() })).dataSource;
      catalog = new Catalog(ds, new SecretBox(key));
    });
    afterAll(async () => {
      await ds?.destroy();
      await backend?.cleanup();
    });

    const it_ = (title: string, fn: () => Promise<void>) =>
      it(title, async (ctx) => {
        if (!backend) ctx.skip();
        await fn();
      });

    it_('runs its migrations once: opening again finds the schema in place', async () => {
      const again = await openCatalogDatabase({ url: backend!.url, runMigrations: true, dataDir: os.tmpdir() });
      const rows = (await again.dataSource.query('SELECT name FROM lazy_content_migrations')) as unknown[];
      expect(rows).toHaveLength(catalogMigrations.length);
      await again.dataSource.destroy();
    });

    it_('adds, updates, lists and removes remotes, never returning secrets in clear', async () => {
      const view = await catalog.addRemote({
        name: 'upstream-a',
        tls: { ca: 'CA-PEM', cert: 'CERT-PEM', key: 'PRIVATE-KEY-PEM', verify: false },
        proxyUrl: 'http://proxyuser:proxypass@127.0.0.1:3128',
        headers: { authorization: 'Bearer token-123' },
        basicAuth: { username: 'alice', password: 'hunter2' },
        policy: 'streamed',
      });
      expect(view.tls).toEqual({ ca: 'CA-PEM', cert: 'CERT-PEM', key: 'set', verify: false });
      expect(view.basicAuth).toEqual({ username: 'alice', password: 'set' });
      expect(view.headers).toEqual({ authorization: 'set' });
      expect(view.proxyUrl).toBe('http://set:set@127.0.0.1:3128/');
      expect(JSON.stringify(view)).not.toMatch(/PRIVATE-KEY-PEM|hunter2|proxypass|token-123/);

      // At rest, too: the table holds sealed text only.
      const raw = JSON.stringify(await ds.query('SELECT * FROM lazy_content_remote'));
      expect(raw).not.toMatch(/PRIVATE-KEY-PEM|hunter2|proxypass|token-123/);

      // The streamer gets them in clear.
      const full = await catalog.remoteById(view.id);
      expect(full?.tls.key).toBe('PRIVATE-KEY-PEM');
      expect(full?.basicAuth?.password).toBe('hunter2');
      expect(full?.headers).toEqual({ authorization: 'Bearer token-123' });

      const updated = await catalog.updateRemote('upstream-a', { connectTimeoutMs: 1234, tls: { verify: true } });
      expect(updated.connectTimeoutMs).toBe(1234);
      expect(updated.tls).toEqual({ ca: 'CA-PEM', cert: 'CERT-PEM', key: 'set', verify: true });
      expect((await catalog.remoteById(view.id))?.tls.key).toBe('PRIVATE-KEY-PEM');
      expect((await catalog.listRemotes()).map((r) => r.name)).toContain('upstream-a');
      expect(await catalog.removeRemote('upstream-a')).toBe(true);
      expect(await catalog.removeRemote('upstream-a')).toBe(false);
      expect(await catalog.getRemote('upstream-a')).toBeNull();
    });

    it_('refuses bad remotes with a clear error', async () => {
      await catalog.addRemote({ name: 'dup' });
      await expect(catalog.addRemote({ name: 'dup' })).rejects.toThrow(/exists already/);
      await expect(catalog.addRemote({ name: '../x' })).rejects.toThrow(/remote name/);
      await expect(catalog.addRemote({ name: 'p', policy: 'sometimes' as never })).rejects.toThrow(/policy must be one of/);
      await expect(catalog.addRemote({ name: 'c', tls: { cert: 'x' } })).rejects.toThrow(/go together/);
      await expect(catalog.addRemote({ name: 't', connectTimeoutMs: -1 })).rejects.toThrow(/positive whole number/);
      await expect(catalog.updateRemote('nope', {})).rejects.toBeInstanceOf(LazyContentError);
    });

    it_('upserts entries idempotently, keeps alternates in order, and looks them up by normalised path', async () => {
      await catalog.addRemote({ name: 'primary' });
      await catalog.addRemote({ name: 'mirror' });
      const entries = [
        { path: '/repo/Packages/a.rpm', remote: 'mirror', url: 'http://127.0.0.1:1/mirror/a.rpm', priority: 10 },
        { path: 'repo/Packages/a.rpm', remote: 'primary', url: 'http://127.0.0.1:1/a.rpm', size: 42, digest: 'AB'.repeat(32) },
        { path: 'repo/Packages/b.rpm', remote: 'primary', url: 'http://127.0.0.1:1/b.rpm', digestAlgorithm: 'md5' as const, digest: 'cd'.repeat(16) },
      ];
      expect(await catalog.addEntries(entries)).toBe(3);
      expect(await catalog.addEntries(entries)).toBe(3);
      const a = await catalog.lookup('repo/Packages/a.rpm');
      expect(a.map((e) => e.url)).toEqual(['http://127.0.0.1:1/a.rpm', 'http://127.0.0.1:1/mirror/a.rpm']);
      expect(a[0]).toMatchObject({ size: 42, digestAlgorithm: 'sha256', digest: 'ab'.repeat(32), priority: 0, savedAt: null });
      expect(await catalog.lookup('repo/Packages/b.rpm')).toMatchObject([{ digestAlgorithm: 'md5' }]);
      expect(await catalog.lookup('repo/Packages/c.rpm')).toEqual([]);

      // An update changes the row in place.
      await catalog.addEntries([{ path: 'repo/Packages/a.rpm', remote: 'primary', url: 'http://127.0.0.1:1/a2.rpm', size: 43 }]);
      expect((await catalog.lookup('repo/Packages/a.rpm'))[0]).toMatchObject({ url: 'http://127.0.0.1:1/a2.rpm', size: 43, id: a[0]!.id });

      await catalog.markSaved('repo/Packages/a.rpm', new Date(1_700_000_000_000));
      expect((await catalog.lookup('repo/Packages/a.rpm')).every((e) => e.savedAt?.getTime() === 1_700_000_000_000)).toBe(true);

      expect(await catalog.removeEntries(['repo/Packages/a.rpm'], 'mirror')).toBe(1);
      expect(await catalog.lookup('repo/Packages/a.rpm')).toHaveLength(1);
      expect(await catalog.removeEntries(['/repo/Packages/a.rpm', 'repo/Packages/b.rpm'])).toBe(2);
      expect(await catalog.lookup('repo/Packages/b.rpm')).toEqual([]);
    });

    it_('keeps a path listed twice in one call once, with the last values', async () => {
      await catalog.addRemote({ name: 'twice' });
      await catalog.addEntries([
        { path: 'dup/x', remote: 'twice', url: 'http://127.0.0.1:1/first' },
        { path: 'dup/x', remote: 'twice', url: 'http://127.0.0.1:1/second' },
      ]);
      expect((await catalog.lookup('dup/x')).map((e) => e.url)).toEqual(['http://127.0.0.1:1/second']);
    });

    it_('rejects a bad entry and writes none of the call', async () => {
      await catalog.addRemote({ name: 'atomic' });
      const bad = [
        { path: 'atomic/ok', remote: 'atomic', url: 'http://127.0.0.1:1/ok' },
        { path: 'atomic/bad', remote: 'atomic', url: 'ftp://127.0.0.1/bad' },
      ];
      await expect(catalog.addEntries(bad)).rejects.toThrow(/http or https/);
      expect(await catalog.lookup('atomic/ok')).toEqual([]);
      await expect(catalog.addEntries([{ path: '../escape', remote: 'atomic', url: 'http://127.0.0.1/' }])).rejects.toThrow(/not valid/);
      await expect(catalog.addEntries([{ path: 'dir/', remote: 'atomic', url: 'http://127.0.0.1/' }])).rejects.toThrow(/folder/);
      await expect(catalog.addEntries([{ path: 'x', remote: 'ghost', url: 'http://127.0.0.1/' }])).rejects.toThrow(/unknown remote/);
      await expect(catalog.addEntries([{ path: 'x', remote: 'atomic', url: 'http://127.0.0.1/', digest: 'zz' }])).rejects.toThrow(/hexadecimal/);
    });

    it_('lists entries in path order below a prefix, page by page, with % and _ taken literally', async () => {
      await catalog.addRemote({ name: 'lister' });
      await catalog.addEntries(['list/a_b/1', 'list/a%b/2', 'list/aXb/3', 'list/z'].map((p) => ({ path: p, remote: 'lister', url: 'http://127.0.0.1:1/x' })));
      expect((await catalog.listEntries({ prefix: 'list/a_b/' })).map((e) => e.path)).toEqual(['list/a_b/1']);
      expect((await catalog.listEntries({ prefix: 'list/a%b' })).map((e) => e.path)).toEqual(['list/a%b/2']);
      const first = await catalog.listEntries({ prefix: 'list/', limit: 2 });
      const second = await catalog.listEntries({ prefix: 'list/', limit: 2, after: first.at(-1)!.path });
      expect([...first, ...second].map((e) => e.path)).toEqual(['list/a%b/2', 'list/aXb/3', 'list/a_b/1', 'list/z']);
      expect(first[0]?.remote).toBe('lister');
    });

    it_('removing a remote removes its entries', async () => {
      await catalog.addRemote({ name: 'gone' });
      await catalog.addEntries([{ path: 'gone/file', remote: 'gone', url: 'http://127.0.0.1:1/file' }]);
      await catalog.removeRemote('gone');
      expect(await catalog.lookup('gone/file')).toEqual([]);
    });

    it_('imports 10,000 entries in one call (the 100,000-entry timing is in bench/catalog-import.mjs)', async () => {
      await catalog.addRemote({ name: 'bulk' });
      const n = await catalog.addEntries(
        (function* () {
          for (let i = 0; i < 10_000; i++) yield { path: `bulk/p/${i}.rpm`, remote: 'bulk', url: `http://127.0.0.1:1/${i}.rpm`, size: i };
        })(),
      );
      expect(n).toBe(10_000);
      expect((await catalog.lookup('bulk/p/9999.rpm'))[0]?.size).toBe(9999);
    });
  });
}
