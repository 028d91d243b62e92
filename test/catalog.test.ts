import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Catalog, catalogMigrations, LazyContentError, openCatalogDatabase, SecretBox } from '@lazy-content/core';
import type { DataSource } from 'typeorm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { postgresAvailable, postgresSchema } from './helpers/services.js';

/** A promise and the function that resolves it: for holding a step of the code under test until the test lets it go. */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

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

  describe(`catalog lookup cache on ${name}`, () => {
    let backend: { url: string; cleanup(): Promise<void> } | null = null;
    /** The database of the catalog under test, whose queries are counted. */
    let ds: DataSource;
    /** A second connection to the same database: another process, as far as the catalog under test knows. */
    let elsewhere: DataSource;
    let other: Catalog;
    let queries: MockInstance;
    /** The database's own `query`, past the spy (for replacements that still reach the database). */
    let query: DataSource['query'];
    const key = randomBytes(32);
    let n = 0;
    /** A fresh remote name and path prefix per test, so that tests never see each other's entries. */
    let remoteName: string;
    let p: (file: string) => string;
    const url = (file: string) => `http://127.0.0.1:1/${file}`;

    beforeAll(async () => {
      backend = await open();
      if (!backend) return;
      ds = (await openCatalogDatabase({ url: backend.url, runMigrations: true, dataDir: os.tmpdir() })).dataSource;
      elsewhere = (await openCatalogDatabase({ url: backend.url, runMigrations: true, dataDir: os.tmpdir() })).dataSource;
      other = new Catalog(elsewhere, new SecretBox(key), { lookupCacheMs: 0 });
    });
    afterAll(async () => {
      await elsewhere?.destroy();
      await ds?.destroy();
      await backend?.cleanup();
    });
    beforeEach(async () => {
      if (!backend) return;
      n++;
      remoteName = `cache-${n}`;
      p = (file) => `cache/${n}/${file}`;
      await other.addRemote({ name: remoteName });
      query = ds.query.bind(ds);
      queries = vi.spyOn(ds, 'query');
    });
    afterEach(() => {
      vi.useRealTimers();
      queries?.mockRestore();
    });

    const it_ = (title: string, fn: () => Promise<void>) =>
      it(title, async (ctx) => {
        if (!backend) ctx.skip();
        await fn();
      });
    const catalogWith = (lookupCacheMs?: number, lookupCacheEntries?: number) =>
      new Catalog(ds, new SecretBox(key), { lookupCacheMs, lookupCacheEntries });
    /** Runs `fn` and returns how many queries went to the database of the catalog under test meanwhile. */
    const counting = async (fn: () => Promise<unknown>): Promise<number> => {
      queries.mockClear();
      await fn();
      return queries.mock.calls.length;
    };
    const urls = async (catalog: Catalog, path: string) => (await catalog.lookup(path)).map((e) => e.url);

    it_('shares one query among concurrent lookups of one path, found or not', async () => {
      const catalog = catalogWith(60_000);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('a') }]);
      let results: Awaited<ReturnType<Catalog['lookup']>>[] = [];
      expect(await counting(async () => (results = await Promise.all(Array.from({ length: 10 }, () => catalog.lookup(p('a'))))))).toBe(1);
      expect(results.every((r) => r.length === 1 && r[0]!.url === url('a'))).toBe(true);
      // Not found: still one query for ten concurrent lookups.
      expect(await counting(() => Promise.all(Array.from({ length: 10 }, () => catalog.lookup(p('absent')))))).toBe(1);
      // Two paths: one query each.
      expect(await counting(() => Promise.all([p('b'), p('c'), p('b'), p('c')].map((x) => catalog.lookup(x))))).toBe(2);
    });

    it_('remembers found entries: the lookups that follow skip the database', async () => {
      const catalog = catalogWith(60_000);
      await other.addEntries([
        { path: p('a'), remote: remoteName, url: url('a'), size: 7 },
        { path: p('b'), remote: remoteName, url: url('b') },
      ]);
      const first = await catalog.lookup(p('a'));
      expect(first).toMatchObject([{ url: url('a'), size: 7 }]);
      let again: typeof first = [];
      expect(
        await counting(async () => {
          for (let i = 0; i < 5; i++) again = await catalog.lookup(p('a'));
        }),
      ).toBe(0);
      expect(again).toEqual(first);
      // Per path: another path is a query of its own, then remembered too.
      expect(await counting(() => catalog.lookup(p('b')))).toBe(1);
      expect(await counting(() => catalog.lookup(p('b')))).toBe(0);
    });

    it_('never remembers a path it does not have: one added through another catalog is found at once', async () => {
      const catalog = catalogWith(60_000);
      expect(await catalog.lookup(p('new'))).toEqual([]);
      expect(await counting(() => catalog.lookup(p('new')))).toBe(1);
      await other.addEntries([{ path: p('new'), remote: remoteName, url: url('new') }]);
      expect(await urls(catalog, p('new'))).toEqual([url('new')]);
    });

    it_('sees every change made through itself at once', async () => {
      const catalog = catalogWith(60_000);
      await catalog.addEntries([{ path: p('a'), remote: remoteName, url: url('a1') }]);
      expect(await urls(catalog, p('a'))).toEqual([url('a1')]);

      // addEntries: a new URL for a remembered path, and a second source.
      await catalog.addEntries([{ path: p('a'), remote: remoteName, url: url('a2') }]);
      expect(await urls(catalog, p('a'))).toEqual([url('a2')]);
      await catalog.addRemote({ name: `${remoteName}-mirror` });
      await catalog.addEntries([{ path: p('a'), remote: `${remoteName}-mirror`, url: url('mirror'), priority: 5 }]);
      expect(await urls(catalog, p('a'))).toEqual([url('a2'), url('mirror')]);

      // markSaved.
      expect((await catalog.lookup(p('a'))).every((e) => e.savedAt === null)).toBe(true);
      await catalog.markSaved(p('a'), new Date(1_700_000_000_000));
      expect((await catalog.lookup(p('a'))).map((e) => e.savedAt?.getTime())).toEqual([1_700_000_000_000, 1_700_000_000_000]);
      await catalog.markSaved(p('a'), null);
      expect((await catalog.lookup(p('a'))).every((e) => e.savedAt === null)).toBe(true);

      // removeEntries, of one remote and then of all.
      expect(await catalog.removeEntries([p('a')], `${remoteName}-mirror`)).toBe(1);
      expect(await urls(catalog, p('a'))).toEqual([url('a2')]);
      expect(await catalog.removeEntries([p('a')])).toBe(1);
      expect(await catalog.lookup(p('a'))).toEqual([]);

      // updateRemote: what was remembered is asked for again.
      await catalog.addEntries([{ path: p('b'), remote: remoteName, url: url('b') }]);
      await catalog.lookup(p('b'));
      expect(await counting(() => catalog.lookup(p('b')))).toBe(0);
      await catalog.updateRemote(remoteName, { connectTimeoutMs: 1234 });
      expect(await counting(() => catalog.lookup(p('b')))).toBe(1);

      // removeRemote takes its entries, remembered or not.
      expect(await urls(catalog, p('b'))).toEqual([url('b')]);
      expect(await catalog.removeRemote(remoteName)).toBe(true);
      expect(await catalog.lookup(p('b'))).toEqual([]);
    });

    it_('does not remember a lookup that began before a change', async () => {
      const catalog = catalogWith(60_000);
      await catalog.addEntries([{ path: p('a'), remote: remoteName, url: url('old') }]);
      // The lookup reads the old row, then is held until the change is done.
      const { promise: held, resolve: release } = signal();
      const { promise: hasRead, resolve: read } = signal();
      queries.mockImplementationOnce(async (...args: Parameters<DataSource['query']>) => {
        const rows: unknown = await query(...args);
        read();
        await held;
        return rows;
      });
      const before = catalog.lookup(p('a'));
      await hasRead;
      await catalog.addEntries([{ path: p('a'), remote: remoteName, url: url('new') }]);
      // A lookup during the wait does not join the one from before the change.
      expect(await urls(catalog, p('a'))).toEqual([url('new')]);
      release();
      expect((await before).map((e) => e.url)).toEqual([url('old')]);
      // What the early lookup read is not kept over what came after it.
      expect(await urls(catalog, p('a'))).toEqual([url('new')]);
    });

    it_('does not remember a lookup made while a change is on its way to the database', async () => {
      const catalog = catalogWith(60_000);
      await catalog.addEntries([{ path: p('a'), remote: remoteName, url: url('old') }]);
      // The change's transaction waits, so that a lookup runs (and reads the old row) in the middle of it.
      const { promise: held, resolve: release } = signal();
      const { promise: inChange, resolve: entered } = signal();
      const transaction = ds.transaction.bind(ds) as (run: unknown) => Promise<unknown>;
      const spy = vi.spyOn(ds, 'transaction').mockImplementationOnce((async (run: unknown) => {
        entered();
        await held;
        return transaction(run);
      }) as DataSource['transaction']);
      try {
        const change = catalog.addEntries([{ path: p('a'), remote: remoteName, url: url('new') }]);
        await inChange;
        expect(await urls(catalog, p('a'))).toEqual([url('old')]);
        release();
        await change;
        expect(await urls(catalog, p('a'))).toEqual([url('new')]);
      } finally {
        spy.mockRestore();
      }
    });

    it_('sees changes made through another catalog only after lookupCacheMs (clock set by hand)', async () => {
      vi.useFakeTimers({ toFake: ['Date'], now: 5_000_000 });
      const catalog = catalogWith(1000);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('one') }]);
      expect(await urls(catalog, p('a'))).toEqual([url('one')]);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('two') }]);
      vi.setSystemTime(5_000_999);
      expect(await urls(catalog, p('a'))).toEqual([url('one')]);
      vi.setSystemTime(5_001_000);
      expect(await urls(catalog, p('a'))).toEqual([url('two')]);
      // Removed elsewhere: remembered as it was, until the time is up.
      await other.removeEntries([p('a')]);
      vi.setSystemTime(5_001_500);
      expect(await urls(catalog, p('a'))).toEqual([url('two')]);
      vi.setSystemTime(5_002_000);
      expect(await catalog.lookup(p('a'))).toEqual([]);
    });

    it_('sees changes made through another catalog on the same database after lookupCacheMs (real clock)', async () => {
      const catalog = catalogWith(50);
      const remembering = catalogWith(60_000);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('one') }]);
      expect(await urls(catalog, p('a'))).toEqual([url('one')]);
      expect(await urls(remembering, p('a'))).toEqual([url('one')]);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('two') }]);
      // Polls until the change shows (no assumption on how long a turn takes; the test timeout bounds it).
      let seen = await urls(catalog, p('a'));
      while (seen[0] !== url('two')) {
        expect(seen).toEqual([url('one')]);
        await new Promise((resolve) => setTimeout(resolve, 10));
        seen = await urls(catalog, p('a'));
      }
      // Once seen, it stays: nothing older comes back.
      expect(await urls(catalog, p('a'))).toEqual([url('two')]);
      // A catalog that remembers for a minute still answers what it read.
      expect(await urls(remembering, p('a'))).toEqual([url('one')]);
    });

    it_('asks the database every time with lookupCacheMs 0', async () => {
      const catalog = catalogWith(0);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('one') }]);
      expect(
        await counting(async () => {
          for (let i = 0; i < 5; i++) expect(await urls(catalog, p('a'))).toEqual([url('one')]);
        }),
      ).toBe(5);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('two') }]);
      expect(await urls(catalog, p('a'))).toEqual([url('two')]);
      // Concurrent lookups still share their query.
      expect(await counting(() => Promise.all(Array.from({ length: 10 }, () => catalog.lookup(p('a')))))).toBe(1);
    });

    it_('remembers at most lookupCacheEntries paths, the least recently used going first', async () => {
      const catalog = catalogWith(60_000, 2);
      await other.addEntries(['a', 'b', 'c'].map((f) => ({ path: p(f), remote: remoteName, url: url(f) })));
      expect(await counting(() => catalog.lookup(p('a')))).toBe(1);
      expect(await counting(() => catalog.lookup(p('b')))).toBe(1);
      expect(await counting(() => catalog.lookup(p('a')))).toBe(0);
      // c pushes out b, the least recently used.
      expect(await counting(() => catalog.lookup(p('c')))).toBe(1);
      expect(await counting(() => catalog.lookup(p('a')))).toBe(0);
      expect(await counting(() => catalog.lookup(p('c')))).toBe(0);
      expect(await counting(() => catalog.lookup(p('b')))).toBe(1);
    });

    it_('does not remember or share a failed lookup', async () => {
      const catalog = catalogWith(60_000);
      await other.addEntries([{ path: p('a'), remote: remoteName, url: url('a') }]);
      queries.mockRejectedValueOnce(new Error('connection lost'));
      const failed = Array.from({ length: 3 }, () => catalog.lookup(p('a')));
      for (const f of failed) await expect(f).rejects.toThrow('connection lost');
      expect(await counting(async () => expect(await urls(catalog, p('a'))).toEqual([url('a')]))).toBe(1);
      expect(await counting(() => catalog.lookup(p('a')))).toBe(0);
    });

    it('shares a query started after a change even when an older query of the path ends first', async (ctx) => {
      if (!backend) ctx.skip();
      const catalog = catalogWith(60_000);
      await catalog.addEntries([{ path: p('a'), remote: remoteName, url: url('a') }]);
      const gates: (() => void)[] = [];
      const gated = async (...args: Parameters<DataSource['query']>) => {
        await new Promise<void>((resolve) => gates.push(resolve));
        return query(...args);
      };
      queries.mockImplementationOnce(gated).mockImplementationOnce(gated);
      queries.mockClear();
      const older = catalog.lookup(p('a'));
      await catalog.markSaved(p('a'), null);
      const newer = catalog.lookup(p('a'));
      expect(gates).toHaveLength(2);
      gates[0]!();
      await older;
      // The newer query is still in flight: this lookup should join it.
      const joining = catalog.lookup(p('a'));
      gates[1]!();
      await Promise.all([newer, joining]);
      // One query before the change, one after: the lookup that came while the second ran shares it.
      expect(queries.mock.calls).toHaveLength(2);
    });
  });
}
