// A repository server that makes its data itself, for the demo, the examples and the tests: a Pulp file
// repository at /file/ and a yum repository at /yum/, whose bytes are generated from a seed on request
// (nothing is stored). See README.md next to this file.
//
//   node examples/demo-upstream/server.mjs          # PORT (8081), HOST (127.0.0.1), SEED
//   import { startDemoUpstream } from './examples/demo-upstream/server.mjs';
import { createCipheriv, createHash } from 'node:crypto';
import { createServer } from 'node:http';
import * as path from 'node:path';
import process from 'node:process';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Every file's modification time, and the yum metadata's timestamps: fixed, so that a seed makes the same bytes. */
const EPOCH_SECONDS = 1_735_689_600; // 2025-01-01T00:00:00Z
const LAST_MODIFIED = new Date(EPOCH_SECONDS * 1000).toUTCString();
const CHUNK = 64 * KiB;
export const DEFAULT_SEED = 'lazy-content demo';

/** The Pulp file repository: relative path → size. */
const FILES = [
  ['tiny-1KiB.bin', 1 * KiB],
  ['odd-size.bin', 999_983], // not a multiple of anything: the last block is partial
  ['medium-1MiB.bin', 1 * MiB],
  ['isos/disk-4MiB.iso', 4 * MiB],
  ['large-32MiB.bin', 32 * MiB],
];

/** The yum repository's packages. Their bytes are pseudo-random, not RPMs; the metadata describes them as if. */
const PACKAGES = [
  {
    name: 'demo-hello', version: '1.0', release: '1', arch: 'noarch', size: 6 * KiB + 123,
    summary: 'Prints a greeting', files: ['/usr/bin/demo-hello'], requires: [],
  },
  {
    name: 'demo-libs', version: '2.3.1', release: '4.el9', arch: 'x86_64', size: 180 * KiB + 7,
    summary: 'Shared libraries of the demo tools', files: ['/usr/lib64/libdemo.so.2', '/usr/lib64/libdemo.so.2.3.1'], requires: [],
  },
  {
    name: 'demo-tools', version: '2.3.1', release: '4.el9', arch: 'x86_64', size: 700 * KiB + 41,
    summary: 'Tools that use the demo libraries', files: ['/usr/bin/demo-tool', '/usr/share/man/man1/demo-tool.1.gz'], requires: ['demo-libs'],
  },
  {
    name: 'demo-data', version: '0.9', release: '1', arch: 'noarch', size: 2 * MiB + 5,
    summary: 'Sample data files', files: ['/usr/share/demo-data/sample.dat'], requires: [],
  },
];

const sha256 = (data) => createHash('sha256').update(data).digest('hex');

/**
 * A file that exists only as a seed: its bytes are the AES-256-CTR keystream of a key derived from the seed and
 * its name, so any range is made directly, without the bytes before it, and the digest is computed once.
 */
class GeneratedFile {
  #key;
  #digest;

  constructor(seed, name, size, contentType) {
    this.#key = createHash('sha256').update(`${seed}\0${name}`).digest();
    this.size = size;
    this.contentType = contentType;
    this.etag = `"${sha256(`${seed}\0${name}\0${size}`).slice(0, 32)}"`;
  }

  /** Bytes [start, end), in chunks, made as they are read. */
  *chunks(start = 0, end = this.size) {
    const block = Math.floor(start / 16);
    const counter = Buffer.alloc(16);
    counter.writeBigUInt64BE(BigInt(block), 8);
    const cipher = createCipheriv('aes-256-ctr', this.#key, counter);
    const zeros = Buffer.alloc(CHUNK);
    let skip = start - block * 16;
    for (let at = block * 16; at < end; ) {
      const n = Math.min(CHUNK, end - at);
      const bytes = cipher.update(zeros.subarray(0, n));
      at += n;
      yield skip > 0 ? bytes.subarray(skip) : bytes;
      skip = 0;
    }
  }

  body(start, end) {
    return Readable.from(this.chunks(start, end));
  }

  get sha256() {
    if (this.#digest === undefined) {
      const hash = createHash('sha256');
      for (const chunk of this.chunks()) hash.update(chunk);
      this.#digest = hash.digest('hex');
    }
    return this.#digest;
  }
}

/** A file held in memory (manifests, metadata). */
class BufferFile {
  constructor(bytes, contentType) {
    this.bytes = bytes;
    this.size = bytes.length;
    this.contentType = contentType;
    this.sha256 = sha256(bytes);
    this.etag = `"${this.sha256.slice(0, 32)}"`;
  }

  body(start, end) {
    return Readable.from([this.bytes.subarray(start, end)]);
  }
}

const escapeXml = (text) =>
  String(text).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);

const rpmFileName = (p) => `${p.name}-${p.version}-${p.release}.${p.arch}.rpm`;
const evr = (p) => `epoch="0" ver="${escapeXml(p.version)}" rel="${escapeXml(p.release)}"`;

function primaryXml(packages) {
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="${packages.length}">`,
  ];
  for (const { meta: p, file } of packages) {
    const headerEnd = Math.min(file.size, 4504 + 1024);
    lines.push(
      '<package type="rpm">',
      `  <name>${escapeXml(p.name)}</name>`,
      `  <arch>${p.arch}</arch>`,
      `  <version ${evr(p)}/>`,
      `  <checksum type="sha256" pkgid="YES">${file.sha256}</checksum>`,
      `  <summary>${escapeXml(p.summary)}</summary>`,
      `  <description>${escapeXml(`${p.summary}. A package of the lazy-content demo repository; its bytes are not a real RPM.`)}</description>`,
      '  <packager>lazy-content demo</packager>',
      '  <url>https://example.invalid/lazy-content</url>',
      `  <time file="${EPOCH_SECONDS}" build="${EPOCH_SECONDS}"/>`,
      `  <size package="${file.size}" installed="${file.size * 3}" archive="${file.size * 3 + 512}"/>`,
      `  <location href="Packages/${escapeXml(rpmFileName(p))}"/>`,
      '  <format>',
      '    <rpm:license>Apache-2.0</rpm:license>',
      '    <rpm:vendor>lazy-content</rpm:vendor>',
      '    <rpm:group>Unspecified</rpm:group>',
      '    <rpm:buildhost>demo.example.invalid</rpm:buildhost>',
      `    <rpm:sourcerpm>${escapeXml(`${p.name}-${p.version}-${p.release}.src.rpm`)}</rpm:sourcerpm>`,
      `    <rpm:header-range start="4504" end="${headerEnd}"/>`,
      '    <rpm:provides>',
      `      <rpm:entry name="${escapeXml(p.name)}" flags="EQ" ${evr(p)}/>`,
      '    </rpm:provides>',
    );
    if (p.requires.length > 0) {
      lines.push('    <rpm:requires>');
      for (const r of p.requires) lines.push(`      <rpm:entry name="${escapeXml(r)}"/>`);
      lines.push('    </rpm:requires>');
    }
    // primary lists the files in /usr/bin and /etc only, as createrepo_c does; filelists has them all.
    for (const f of p.files.filter((f) => f.startsWith('/usr/bin/') || f.startsWith('/etc/'))) lines.push(`    <file>${escapeXml(f)}</file>`);
    lines.push('  </format>', '</package>');
  }
  lines.push('</metadata>', '');
  return lines.join('\n');
}

function filelistsXml(packages) {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="${packages.length}">`];
  for (const { meta: p, file } of packages) {
    lines.push(`<package pkgid="${file.sha256}" name="${escapeXml(p.name)}" arch="${p.arch}">`, `  <version ${evr(p)}/>`);
    for (const f of p.files) lines.push(`  <file>${escapeXml(f)}</file>`);
    lines.push('</package>');
  }
  lines.push('</filelists>', '');
  return lines.join('\n');
}

function otherXml(packages) {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<otherdata xmlns="http://linux.duke.edu/metadata/other" packages="${packages.length}">`];
  for (const { meta: p, file } of packages) {
    lines.push(
      `<package pkgid="${file.sha256}" name="${escapeXml(p.name)}" arch="${p.arch}">`,
      `  <version ${evr(p)}/>`,
      `  <changelog author="lazy-content demo &lt;demo@example.invalid&gt; - ${escapeXml(`${p.version}-${p.release}`)}" date="${EPOCH_SECONDS}">- Made up for the demo</changelog>`,
      '</package>',
    );
  }
  lines.push('</otherdata>', '');
  return lines.join('\n');
}

/** repodata/ as createrepo_c writes it: gzip files named after their checksum, listed by repomd.xml. */
function yumRepodata(packages) {
  const files = new Map();
  const data = [];
  for (const [type, xml] of [['primary', primaryXml(packages)], ['filelists', filelistsXml(packages)], ['other', otherXml(packages)]]) {
    const open = Buffer.from(xml, 'utf8');
    const gz = gzipSync(open, { level: 9 });
    const href = `repodata/${sha256(gz)}-${type}.xml.gz`;
    files.set(href, new BufferFile(gz, 'application/gzip'));
    data.push(
      `  <data type="${type}">`,
      `    <checksum type="sha256">${sha256(gz)}</checksum>`,
      `    <open-checksum type="sha256">${sha256(open)}</open-checksum>`,
      `    <location href="${href}"/>`,
      `    <timestamp>${EPOCH_SECONDS}</timestamp>`,
      `    <size>${gz.length}</size>`,
      `    <open-size>${open.length}</open-size>`,
      '  </data>',
    );
  }
  const repomd = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">',
    `  <revision>${EPOCH_SECONDS}</revision>`,
    ...data,
    '</repomd>',
    '',
  ].join('\n');
  files.set('repodata/repomd.xml', new BufferFile(Buffer.from(repomd, 'utf8'), 'application/xml'));
  return files;
}

/** The served tree: URL path → file, built once per seed; digests and metadata are computed on first use. */
function repositories(seed) {
  const fileRepo = new Map(FILES.map(([name, size]) => [`/file/${name}`, new GeneratedFile(seed, `file/${name}`, size, 'application/octet-stream')]));
  const packages = PACKAGES.map((meta) => ({
    meta,
    file: new GeneratedFile(seed, `yum/${rpmFileName(meta)}`, meta.size, 'application/x-rpm'),
  }));
  const yumRepo = new Map(packages.map((p) => [`/yum/Packages/${rpmFileName(p.meta)}`, p.file]));
  let manifest;
  let repodata;
  return (urlPath) => {
    if (urlPath === '/file/PULP_MANIFEST') {
      manifest ??= new BufferFile(
        Buffer.from([...fileRepo].map(([p, f]) => `${p.slice('/file/'.length)},${f.sha256},${f.size}\n`).join(''), 'utf8'),
        'text/plain; charset=utf-8',
      );
      return manifest;
    }
    if (urlPath.startsWith('/yum/repodata/')) {
      repodata ??= yumRepodata(packages);
      return repodata.get(urlPath.slice('/yum/'.length));
    }
    return fileRepo.get(urlPath) ?? yumRepo.get(urlPath);
  };
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range → [start, end); null: serve the whole file; 'unsatisfiable'. */
function parseRange(header, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // several ranges or a bad one: the whole file is a valid answer
  let start;
  let end;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1);
    if (end <= start && m[2] !== '') return null;
  }
  return start >= size || (m[1] === '' && m[2] === '0') ? 'unsatisfiable' : [start, end];
}

function serveFile(req, res, file) {
  const headers = {
    'content-type': file.contentType,
    etag: file.etag,
    'last-modified': LAST_MODIFIED,
    'accept-ranges': 'bytes',
  };
  if (req.headers['if-none-match'] === file.etag) {
    res.writeHead(304, headers).end();
    return;
  }
  let range = null;
  const ifRange = req.headers['if-range'];
  if (req.headers.range && (ifRange === undefined || ifRange === file.etag || ifRange === LAST_MODIFIED)) {
    range = parseRange(req.headers.range, file.size);
  }
  if (range === 'unsatisfiable') {
    res.writeHead(416, { 'content-range': `bytes */${file.size}`, 'content-length': '0' }).end();
    return;
  }
  const [start, end] = range ?? [0, file.size];
  headers['content-length'] = String(end - start);
  if (range) headers['content-range'] = `bytes ${start}-${end - 1}/${file.size}`;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const body = file.body(start, end);
  body.on('error', (err) => res.destroy(err));
  res.on('close', () => body.destroy());
  body.pipe(res);
}

function sendText(res, status, text, headers = {}) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers }).end(text);
}

/**
 * Starts the demo upstream. `port: 0` picks a free port. The same `seed` always makes the same bytes.
 * `requests(path)` counts requests for a URL path (query ignored), e.g. `requests('/file/tiny-1KiB.bin')`.
 */
export async function startDemoUpstream({ host = '127.0.0.1', port = 8081, seed = DEFAULT_SEED } = {}) {
  const lookup = repositories(seed);
  const counts = new Map();
  const pathOf = (target) => new URL(target, 'http://upstream.invalid').pathname;
  let origin = '';

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    if (url.pathname === '/_requests') {
      const body = url.searchParams.has('path')
        ? { path: pathOf(url.searchParams.get('path')), count: counts.get(pathOf(url.searchParams.get('path'))) ?? 0 }
        : Object.fromEntries(counts);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    counts.set(url.pathname, (counts.get(url.pathname) ?? 0) + 1);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'Method not allowed\n', { allow: 'GET, HEAD' });
      return;
    }
    if (url.pathname === '/') {
      sendText(res, 200, `lazy-content demo upstream\n  Pulp file repository: ${origin}/file/ (PULP_MANIFEST)\n  yum repository:       ${origin}/yum/ (repodata/repomd.xml)\n  request counts:       ${origin}/_requests?path=/file/PULP_MANIFEST\n`);
      return;
    }
    const file = lookup(url.pathname);
    if (!file) {
      sendText(res, 404, 'Not found\n');
      return;
    }
    serveFile(req, res, file);
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  origin = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  return {
    url: origin,
    fileRepoUrl: `${origin}/file/`,
    yumRepoUrl: `${origin}/yum/`,
    requests: (p) => counts.get(pathOf(p)) ?? 0,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const upstream = await startDemoUpstream({
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 8081),
    seed: process.env.SEED ?? DEFAULT_SEED,
  });
  console.log(`listening on ${upstream.url}`);
  console.log(`  Pulp file repository: ${upstream.fileRepoUrl}PULP_MANIFEST`);
  console.log(`  yum repository:       ${upstream.yumRepoUrl}repodata/repomd.xml`);
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void upstream.close());
}
