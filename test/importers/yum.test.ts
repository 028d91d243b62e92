import { importRepository, type LazyContent, type RepositoryImportProgress } from '@lazy-content/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { postgresAvailable, postgresSchema } from '../helpers/services.js';
import {
  type Compression,
  compress,
  digest,
  entriesByPath,
  instance,
  type Instance,
  primaryXml,
  type RepoServer,
  repomdXml,
  rpm,
  type RpmPackage,
  sha256,
  snapshot,
  startRepoServer,
  yumRepo,
} from './repo-server.js';

const BASE = '/rhel/9/baseos/';
const PREFIX = 'rhel9/baseos/';
let upstream: RepoServer;
let h: Instance;

beforeAll(async () => {
  upstream = await startRepoServer();
});
afterAll(async () => {
  await upstream.close();
});
beforeEach(async () => {
  h = await instance();
});
afterEach(async () => {
  await h.close();
});

const importYum = (lc: LazyContent = h.lc, extra: Partial<Parameters<typeof importRepository>[1]> = {}) =>
  importRepository(lc, { url: `${upstream.origin}${BASE}`, type: 'yum', prefix: PREFIX, remote: 'baseos', ...extra });

const packages = (): RpmPackage[] => [rpm('bash', 300), rpm('coreutils', 500), rpm('zsh', 200)];

/** The entries the import is expected to hold: path → [url, size, algorithm, digest, maxAgeMs]. */
function expected(files: Map<string, Buffer>, pkgs: RpmPackage[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  out.set(`${PREFIX}repodata/repomd.xml`, { url: `${upstream.origin}${BASE}repodata/repomd.xml`, size: null, digest: null, maxAgeMs: 300_000 });
  for (const [rel, bytes] of files) {
    if (rel === 'repodata/repomd.xml') continue;
    const pkg = pkgs.find((p) => p.href === rel);
    const algorithm = pkg?.checksumType === 'sha' ? 'sha1' : (pkg?.checksumType ?? 'sha256');
    out.set(`${PREFIX}${rel}`, { url: `${upstream.origin}${BASE}${rel}`, size: bytes.length, digestAlgorithm: algorithm, digest: digest(algorithm, bytes), maxAgeMs: null });
  }
  return out;
}

async function expectCatalogToHold(lc: LazyContent, want: Map<string, unknown>): Promise<void> {
  const have = await entriesByPath(lc, 'baseos', PREFIX);
  expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [path, fields] of want) expect(have.get(path), path).toMatchObject(fields as object);
}

describe.each<Compression>(['gz', 'xz', 'zst'])('a yum repository with a %s primary', (compression) => {
  it('imports every package, every repodata file, repomd.xml served fresh, and .treeinfo and listing', async () => {
    const pkgs = packages();
    const repo = yumRepo({ packages: pkgs, compression, treeinfo: '[general]\nname = test\n', listing: '9\n9.4\n' });
    upstream.publish(BASE, repo.files);
    const result = await importYum();
    // 3 packages, primary, filelists, repomd.xml, .treeinfo, listing
    expect(result).toMatchObject({ added: 8, updated: 0, unchanged: 0, removed: 0, total: 8 });
    await expectCatalogToHold(h.lc, expected(repo.files, pkgs));
    const [treeinfo] = await (await h.lc.catalog()).lookup(`${PREFIX}.treeinfo`);
    expect(treeinfo).toMatchObject({ size: 22, digestAlgorithm: 'sha256', digest: sha256('[general]\nname = test\n') });
  });

  it('is idempotent, then follows a changed, an added and a removed package', async () => {
    const pkgs = packages();
    upstream.publish(BASE, yumRepo({ packages: pkgs, compression }).files);
    await importYum();
    const before = await snapshot(h.lc);
    expect(await importYum()).toMatchObject({ added: 0, updated: 0, unchanged: 6, removed: 0, total: 6 });
    expect(await snapshot(h.lc)).toEqual(before);

    // A rebuilt bash (same file name, new bytes), a new package, zsh gone: a new primary, so new repodata too.
    const changed = [{ ...pkgs[0]!, bytes: Buffer.from('rebuilt bash') }, pkgs[1]!, rpm('tmux', 100)];
    const repo = yumRepo({ packages: changed, compression });
    upstream.publish(BASE, repo.files);
    const result = await importYum();
    // Added: tmux and the new primary; updated: bash (filelists is the same file); removed: zsh and the old primary.
    expect(result).toMatchObject({ added: 2, updated: 1, unchanged: 3, removed: 2, total: 6 });
    await expectCatalogToHold(h.lc, expected(repo.files, changed));
  });
});

describe('yum metadata', () => {
  it('skips .treeinfo and listing when the upstream has none', async () => {
    upstream.publish(BASE, yumRepo({ packages: packages(), compression: 'gz' }).files);
    const result = await importYum();
    expect(result.total).toBe(6);
    const catalog = await h.lc.catalog();
    expect(await catalog.lookup(`${PREFIX}.treeinfo`)).toEqual([]);
    expect(await catalog.lookup(`${PREFIX}listing`)).toEqual([]);
    expect(upstream.requests).toEqual(expect.arrayContaining([`${BASE}.treeinfo`, `${BASE}listing`]));
  });

  it('imports repomd.xml.asc, served fresh, when present', async () => {
    const repo = yumRepo({ packages: packages(), compression: 'gz' });
    repo.files.set('repodata/repomd.xml.asc', Buffer.from('-----BEGIN PGP SIGNATURE-----\n'));
    upstream.publish(BASE, repo.files);
    await importYum(h.lc, { maxAgeMs: 60_000 });
    const catalog = await h.lc.catalog();
    expect((await catalog.lookup(`${PREFIX}repodata/repomd.xml.asc`))[0]).toMatchObject({ maxAgeMs: 60_000, digest: null });
    expect((await catalog.lookup(`${PREFIX}repodata/repomd.xml`))[0]).toMatchObject({ maxAgeMs: 60_000, digest: null });
  });

  it('maps every checksum type (sha → sha1) and follows xml:base', async () => {
    const pkgs: RpmPackage[] = [
      { ...rpm('old-sha'), checksumType: 'sha' },
      { ...rpm('with-sha1'), checksumType: 'sha1' },
      { ...rpm('with-md5'), checksumType: 'md5' },
      { ...rpm('with-sha512'), checksumType: 'sha512' },
      { ...rpm('with-sha384'), checksumType: 'sha384' },
      { ...rpm('elsewhere'), href: 'Packages/e/elsewhere.rpm', xmlBase: `${upstream.origin}/pool/` },
    ];
    const repo = yumRepo({ packages: pkgs, compression: 'gz' });
    upstream.publish(BASE, repo.files);
    upstream.put('/pool/Packages/e/elsewhere.rpm', pkgs[5]!.bytes);
    await importYum();
    const have = await entriesByPath(h.lc, 'baseos', PREFIX);
    expect(have.get(`${PREFIX}${pkgs[0]!.href}`)).toMatchObject({ digestAlgorithm: 'sha1', digest: digest('sha1', pkgs[0]!.bytes) });
    expect(have.get(`${PREFIX}${pkgs[1]!.href}`)).toMatchObject({ digestAlgorithm: 'sha1' });
    expect(have.get(`${PREFIX}${pkgs[2]!.href}`)).toMatchObject({ digestAlgorithm: 'md5', digest: digest('md5', pkgs[2]!.bytes) });
    expect(have.get(`${PREFIX}${pkgs[3]!.href}`)).toMatchObject({ digestAlgorithm: 'sha512', digest: digest('sha512', pkgs[3]!.bytes) });
    expect(have.get(`${PREFIX}${pkgs[4]!.href}`)).toMatchObject({ digestAlgorithm: 'sha384' });
    // The request path stays below the prefix; the file is fetched from its xml:base.
    expect(have.get(`${PREFIX}Packages/e/elsewhere.rpm`)).toMatchObject({ url: `${upstream.origin}/pool/Packages/e/elsewhere.rpm` });
  });

  it('reports the expected count from the primary while reading', async () => {
    const pkgs = Array.from({ length: 1500 }, (_, i) => rpm(`p${i}`, 10));
    upstream.publish(BASE, yumRepo({ packages: pkgs, compression: 'zst' }).files);
    const seen: RepositoryImportProgress[] = [];
    await importYum(h.lc, { onProgress: (p) => seen.push(p) });
    const reading = seen.filter((p) => p.phase === 'reading');
    expect(reading.some((p) => p.file === 'repodata/repomd.xml')).toBe(true);
    expect(reading.at(-1)).toMatchObject({ found: 1503, expected: 1503, file: expect.stringMatching(/-primary\.xml\.zst$/) });
    expect(reading.some((p) => p.found === 1000)).toBe(true);
  });
});

describe('malformed yum metadata: a clear error and an unchanged catalog', () => {
  const good = () => yumRepo({ packages: packages(), compression: 'gz' });
  const truncate = (b: Buffer) => b.subarray(0, b.length - 20);
  const cases: Array<[string, () => Map<string, Buffer>, RegExp]> = [
    [
      'repomd.xml that is not XML',
      () => new Map([...good().files, ['repodata/repomd.xml', Buffer.from('<repomd><data type="primary"></repomd>')]]),
      /repodata\/repomd\.xml is not well-formed XML/,
    ],
    [
      'repomd.xml that is not repomd',
      () => new Map([...good().files, ['repodata/repomd.xml', Buffer.from('<html><body>Not here</body></html>')]]),
      /repodata\/repomd\.xml line 1: the root element is <html>, not <repomd>/,
    ],
    [
      'repomd.xml without primary',
      () => {
        const { files, data } = good();
        files.set('repodata/repomd.xml', Buffer.from(repomdXml(data.filter((d) => d.type !== 'primary'))));
        return files;
      },
      /repomd\.xml lists no primary metadata/,
    ],
    [
      'a primary missing upstream',
      () => {
        const { files, primaryHref } = good();
        files.delete(primaryHref);
        return files;
      },
      /could not fetch .*-primary\.xml\.gz: the upstream answered 404/,
    ],
    [
      'a primary whose checksum does not match repomd.xml',
      () => yumRepo({ packages: packages(), compression: 'gz', primaryChecksum: sha256('something else') }).files,
      /-primary\.xml\.gz: its sha256 checksum is [0-9a-f]{64}, repodata\/repomd\.xml says [0-9a-f]{64}/,
    ],
    [
      'a primary whose data entry has a malformed checksum',
      () => yumRepo({ packages: packages(), compression: 'gz', primaryChecksum: 'abc' }).files,
      /repomd\.xml line \d+: data "primary" has a sha256 checksum "abc" that is not 64 hexadecimal digits/,
    ],
    ['a truncated gzip primary', () => yumRepo({ packages: packages(), compression: 'gz', tamper: truncate }).files, /-primary\.xml\.gz: the gzip stream is truncated/],
    ['a truncated xz primary', () => yumRepo({ packages: packages(), compression: 'xz', tamper: truncate }).files, /-primary\.xml\.xz: the xz stream cannot be read: it is truncated/],
    ['a truncated zstd primary', () => yumRepo({ packages: packages(), compression: 'zst', tamper: truncate }).files, /-primary\.xml\.zst: the zstd stream is truncated/],
    [
      'a corrupt gzip primary',
      () => yumRepo({ packages: packages(), compression: 'gz', tamper: (b) => Buffer.concat([b.subarray(0, 20), Buffer.alloc(40, 0xff), b.subarray(60)]) }).files,
      /-primary\.xml\.gz: the gzip stream is corrupt/,
    ],
    [
      'a primary whose XML is cut short',
      () => yumRepo({ packages: packages(), compression: 'zst', primary: Buffer.from(primaryXml(packages()).slice(0, 900)) }).files,
      /-primary\.xml\.zst is not well-formed XML/,
    ],
    [
      'a package without a checksum',
      () => yumRepo({ packages: [], compression: 'xz', primary: Buffer.from('<metadata packages="1"><package><name>x</name><location href="x.rpm"/><size package="1"/></package></metadata>') }).files,
      /-primary\.xml\.xz line 1: package "x" has no checksum/,
    ],
    [
      'a package with an unknown checksum type',
      () =>
        yumRepo({
          packages: [],
          compression: 'gz',
          primary: Buffer.from(`<metadata><package><name>x</name><checksum type="crc32">abcd</checksum><location href="x.rpm"/><size package="1"/></package></metadata>`),
        }).files,
      /package "x" has checksum type "crc32", which is not supported/,
    ],
    [
      'a package whose location leads outside the repository',
      () => yumRepo({ packages: [{ ...rpm('evil'), href: '../../etc/evil.rpm' }], compression: 'gz' }).files,
      /primary\.xml\.gz line \d+: package "evil": location "..\/..\/etc\/evil.rpm" is not usable: it leads outside the repository/,
    ],
    [
      'a package whose location is an absolute URL',
      () => yumRepo({ packages: [{ ...rpm('far'), href: 'http://elsewhere/far.rpm' }], compression: 'gz' }).files,
      /package "far": location "http:\/\/elsewhere\/far.rpm" is an absolute URL/,
    ],
    [
      'a primary compressed with bzip2',
      () => {
        const { files, data } = good();
        const bz = Buffer.from('BZh91AY&SY fake bzip2');
        const others = data.filter((d) => d.type !== 'primary');
        files.set('repodata/primary.xml.bz2', bz);
        files.set('repodata/repomd.xml', Buffer.from(repomdXml([...others, { type: 'primary', href: 'repodata/primary.xml.bz2', bytes: bz }])));
        return files;
      },
      /primary\.xml\.bz2: bzip2 compression is not supported/,
    ],
  ];

  it.each(cases)('%s', async (_title, build, message) => {
    const first = yumRepo({ packages: [rpm('before')], compression: 'gz', listing: 'x\n' });
    upstream.publish(BASE, first.files);
    await importYum();
    const before = await snapshot(h.lc);
    upstream.publish(BASE, build());
    await expect(importYum(h.lc, { policy: 'background' })).rejects.toMatchObject({ code: 'UPSTREAM_FAILED', message: expect.stringMatching(message) });
    expect(await snapshot(h.lc)).toEqual(before);
  });

  it('a failed first import creates no remote', async () => {
    upstream.publish(BASE, new Map([['repodata/repomd.xml', Buffer.from('not xml at all')]]));
    await expect(importYum()).rejects.toThrow(/repomd\.xml is not well-formed XML/);
    expect(await snapshot(h.lc)).toEqual({ remotes: [], entries: [] });
  });
});

describe('an upstream that fails for a moment', () => {
  const published = () => {
    const repo = yumRepo({ packages: packages(), compression: 'gz' });
    upstream.publish(BASE, repo.files);
    return repo;
  };
  const primaryPath = (files: Map<string, Buffer>) => `${BASE}${[...files.keys()].find((k) => k.includes('primary'))!}`;
  const countOf = (urlPath: string) => upstream.requests.filter((r) => r === urlPath).length;

  it('tries a metadata file again after a 503 or 429, and the import succeeds', async () => {
    const repo = published();
    const repomd = `${BASE}repodata/repomd.xml`;
    const primary = primaryPath(repo.files);
    const before = [countOf(repomd), countOf(primary)];
    upstream.failNext(repomd, 2, 503);
    upstream.failNext(primary, 1, 429, '0');
    const result = await importYum(h.lc, { retryDelayMs: 5 });
    expect(result.total).toBe(expected(repo.files, packages()).size);
    await expectCatalogToHold(h.lc, expected(repo.files, packages()));
    expect(countOf(repomd) - before[0]!).toBe(3);
    expect(countOf(primary) - before[1]!).toBe(2);
  });

  it('gives up after `attempts`, saying how many, and changes nothing', async () => {
    published();
    const repomd = `${BASE}repodata/repomd.xml`;
    const before = countOf(repomd);
    upstream.failNext(repomd, 5, 502);
    await expect(importYum(h.lc, { attempts: 4, retryDelayMs: 1 })).rejects.toMatchObject({
      code: 'UPSTREAM_FAILED',
      message: expect.stringMatching(/repomd\.xml: the upstream answered 502 \(4 tries\)/),
    });
    expect(countOf(repomd) - before).toBe(4);
    expect(await snapshot(h.lc)).toEqual({ remotes: [], entries: [] });
    upstream.failNext(repomd, 0, 502);
  });

  it('does not try again an answer that will not change (404, 401)', async () => {
    published();
    const repomd = `${BASE}repodata/repomd.xml`;
    const before = countOf(repomd);
    upstream.failNext(repomd, 1, 401);
    await expect(importYum(h.lc, { retryDelayMs: 1 })).rejects.toThrow(/answered 401$/);
    expect(countOf(repomd) - before).toBe(1);
  });

  it('refuses attempts and retryDelayMs that are not sensible whole numbers', async () => {
    await expect(importYum(h.lc, { attempts: 0 })).rejects.toThrow(/option "attempts" must be a whole number from 1 to 100/);
    await expect(importYum(h.lc, { attempts: 1.5 })).rejects.toThrow(/option "attempts"/);
    await expect(importYum(h.lc, { retryDelayMs: -1 })).rejects.toThrow(/option "retryDelayMs" must be a whole number of milliseconds/);
  });
});

describe('a large primary', () => {
  it.each<Compression>(['gz', 'zst', 'xz'])('imports 50,000 packages from a %s primary, parsed as a stream', async (compression) => {
    // Generated as text directly: 50,000 packages of realistic shape, ~45 MB of XML.
    const parts: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="50000">\n'];
    const filler = 'A long description line that real primary files have plenty of. '.repeat(8);
    for (let i = 0; i < 50_000; i++) {
      parts.push(
        `<package type="rpm"><name>pkg${i}</name><arch>x86_64</arch><version epoch="0" ver="1.${i}" rel="1.el9"/>` +
          `<checksum type="sha256" pkgid="YES">${sha256(String(i))}</checksum><summary>Package ${i}</summary><description>${filler}</description>` +
          `<size package="${1000 + i}" installed="${5000 + i}" archive="${6000 + i}"/><location href="Packages/p/pkg${i}-1.${i}-1.el9.x86_64.rpm"/>` +
          `<format><rpm:license>GPL</rpm:license><rpm:provides><rpm:entry name="pkg${i}" flags="EQ" epoch="0" ver="1.${i}" rel="1.el9"/></rpm:provides></format></package>\n`,
      );
    }
    parts.push('</metadata>\n');
    const xml = Buffer.from(parts.join(''));
    const primary = compress(compression, xml);
    const href = `repodata/${sha256(primary)}-primary.xml.${compression}`;
    upstream.publish(
      BASE,
      new Map([
        [href, primary],
        ['repodata/repomd.xml', Buffer.from(repomdXml([{ type: 'primary', href, bytes: primary }]))],
      ]),
    );
    const result = await importYum();
    expect(result).toMatchObject({ added: 50_002, total: 50_002 });
    const [last] = await (await h.lc.catalog()).lookup(`${PREFIX}Packages/p/pkg49999-1.49999-1.el9.x86_64.rpm`);
    expect(last).toMatchObject({ size: 50_999, digest: sha256('49999') });
    expect(await importYum()).toMatchObject({ added: 0, updated: 0, removed: 0, unchanged: 50_002 });
    // Not a timing assertion: room for a slow machine, which the default 30 s may not give.
  }, 180_000);
});

describe('on PostgreSQL', () => {
  let pg: { url: string; drop(): Promise<void> } | null = null;
  beforeAll(async () => {
    if (await postgresAvailable()) pg = await postgresSchema('importers');
  });
  afterAll(async () => {
    await pg?.drop();
  });

  it('imports, re-imports and follows changes the same way', async (ctx) => {
    if (!pg) ctx.skip();
    const other = await instance({ catalog: { database: pg!.url } });
    try {
      const pkgs = packages();
      upstream.publish(BASE, yumRepo({ packages: pkgs, compression: 'xz' }).files);
      expect(await importYum(other.lc)).toMatchObject({ added: 6, total: 6 });
      expect(await importYum(other.lc)).toMatchObject({ added: 0, updated: 0, unchanged: 6, removed: 0 });
      const changed = [pkgs[0]!, { ...pkgs[1]!, bytes: Buffer.from('rebuilt') }, rpm('tmux')];
      const repo = yumRepo({ packages: changed, compression: 'xz' });
      upstream.publish(BASE, repo.files);
      expect(await importYum(other.lc)).toMatchObject({ added: 2, updated: 1, unchanged: 3, removed: 2, total: 6 });
      await expectCatalogToHold(other.lc, expected(repo.files, changed));
    } finally {
      await other.close();
    }
  });
});
