import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createLazyContent, type CatalogEntry, type LazyContent, type LazyContentOptions, type RemoteView } from '@lazy-content/core';

/** An upstream made of files in memory, served over real HTTP on 127.0.0.1. */
export interface RepoServer {
  origin: string;
  /** Serves `bytes` at `urlPath` (below the origin, starting with `/`). */
  put(urlPath: string, bytes: Buffer | string): void;
  remove(urlPath: string): void;
  /** Replaces everything under `base` by these files (paths relative to `base`). */
  publish(base: string, files: Map<string, Buffer>): void;
  /** Requests of each path, as the server decoded them. */
  requests: string[];
  /** When set, requests without this `authorization` header get 401. */
  requireAuthorization: string | null;
  /** The next `times` requests of `urlPath` get `status` (with `retryAfter` as Retry-After when given). */
  failNext(urlPath: string, times: number, status: number, retryAfter?: string): void;
  /** Answers for `urlPath` wait `ms` before they start (0: at once again). */
  delay(urlPath: string, ms: number): void;
  /** The most requests of `urlPath` that were being answered at the same time. */
  maxInFlight(urlPath: string): number;
  close(): Promise<void>;
}

/** With `tls`, an HTTPS server (with `requestCert`, a client certificate is required). */
export async function startRepoServer(options: { tls?: https.ServerOptions } = {}): Promise<RepoServer> {
  const files = new Map<string, Buffer>();
  const requests: string[] = [];
  const failures = new Map<string, { times: number; status: number; retryAfter: string | undefined }>();
  const state = { requireAuthorization: null as string | null };
  const delays = new Map<string, number>();
  const inFlight = new Map<string, { now: number; max: number }>();
  const handler: http.RequestListener = (req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const flight = inFlight.get(urlPath) ?? { now: 0, max: 0 };
    inFlight.set(urlPath, flight);
    flight.now++;
    flight.max = Math.max(flight.max, flight.now);
    res.on('close', () => flight.now--);
    const wait = delays.get(urlPath) ?? 0;
    if (wait > 0) setTimeout(() => answer(req, res, urlPath), wait);
    else answer(req, res, urlPath);
  };
  const answer = (req: http.IncomingMessage, res: http.ServerResponse, urlPath: string) => {
    requests.push(urlPath);
    if (state.requireAuthorization !== null && req.headers.authorization !== state.requireAuthorization) {
      res.writeHead(401).end();
      return;
    }
    const failure = failures.get(urlPath);
    if (failure && failure.times > 0) {
      failure.times--;
      res.writeHead(failure.status, failure.retryAfter === undefined ? {} : { 'retry-after': failure.retryAfter }).end('try again later');
      return;
    }
    const body = files.get(urlPath);
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const server = options.tls ? https.createServer({ ...options.tls, rejectUnauthorized: true }, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    put: (p, bytes) => void files.set(p, Buffer.from(bytes)),
    failNext: (p, times, status, retryAfter) => void failures.set(p, { times, status, retryAfter }),
    delay: (p, ms) => void delays.set(p, ms),
    maxInFlight: (p) => inFlight.get(p)?.max ?? 0,
    remove: (p) => void files.delete(p),
    publish(base, content) {
      for (const key of [...files.keys()]) if (key.startsWith(base)) files.delete(key);
      for (const [rel, bytes] of content) files.set(base + rel, bytes);
    },
    requests,
    get requireAuthorization() {
      return state.requireAuthorization;
    },
    set requireAuthorization(value) {
      state.requireAuthorization = value;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
export const digest = (algorithm: string, b: Buffer | string) => createHash(algorithm).update(b).digest('hex');

// ---- Pulp file repositories ----

export function pulpManifest(files: Map<string, Buffer>): string {
  return [...files].map(([rel, bytes]) => `${rel},${sha256(bytes)},${bytes.length}\n`).join('');
}

/** The files and their PULP_MANIFEST. */
export function fileRepo(files: Map<string, Buffer>): Map<string, Buffer> {
  return new Map([...files, ['PULP_MANIFEST', Buffer.from(pulpManifest(files))]]);
}

// ---- yum repositories ----

export type Compression = 'gz' | 'xz' | 'zst';

export function compress(kind: Compression, data: Buffer): Buffer {
  if (kind === 'gz') return gzipSync(data);
  // The machine's own tools, as createrepo_c would write them.
  if (kind === 'xz') return execFileSync('/usr/bin/xz', ['-c', '-z', '-0', '-T1'], { input: data, maxBuffer: 1 << 30 });
  return execFileSync('/usr/bin/zstd', ['-c', '-q'], { input: data, maxBuffer: 1 << 30 });
}

export interface RpmPackage {
  name: string;
  /** `location href`, relative to the repository's base. */
  href: string;
  bytes: Buffer;
  /** @default 'sha256' */
  checksumType?: string;
  /** `location xml:base`. */
  xmlBase?: string;
}

const COMMON = 'http://linux.duke.edu/metadata/common';
const RPM = 'http://linux.duke.edu/metadata/rpm';
const REPO = 'http://linux.duke.edu/metadata/repo';

const algorithmOf = (type: string) => (type === 'sha' ? 'sha1' : type);

export function packageXml(p: RpmPackage): string {
  const type = p.checksumType ?? 'sha256';
  const base = p.xmlBase ? ` xml:base="${p.xmlBase}"` : '';
  return `<package type="rpm">
  <name>${p.name}</name>
  <arch>noarch</arch>
  <version epoch="0" ver="1.0" rel="1"/>
  <checksum type="${type}" pkgid="YES">${digest(algorithmOf(type), p.bytes)}</checksum>
  <summary>The ${p.name} package &amp; friends</summary>
  <description><![CDATA[A test <package> with <checksum> in its description.]]></description>
  <time file="1700000000" build="1700000000"/>
  <size package="${p.bytes.length}" installed="${p.bytes.length * 2}" archive="${p.bytes.length + 100}"/>
  <location${base} href="${p.href}"/>
  <format>
    <rpm:license>MIT</rpm:license>
    <rpm:provides><rpm:entry name="${p.name}" flags="EQ" epoch="0" ver="1.0" rel="1"/></rpm:provides>
    <file>/usr/share/${p.name}/checksum</file>
  </format>
</package>
`;
}

export function primaryXml(packages: RpmPackage[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="${COMMON}" xmlns:rpm="${RPM}" packages="${packages.length}">
${packages.map(packageXml).join('')}</metadata>
`;
}

export interface DataFile {
  type: string;
  href: string;
  bytes: Buffer;
  /** @default 'sha256' */
  checksumType?: string;
  /** Overrides the checksum written in repomd.xml. */
  checksum?: string;
}

export function repomdXml(data: DataFile[]): string {
  const entries = data.map((d) => {
    const type = d.checksumType ?? 'sha256';
    return `  <data type="${d.type}">
    <checksum type="${type}">${d.checksum ?? digest(algorithmOf(type), d.bytes)}</checksum>
    <location href="${d.href}"/>
    <timestamp>1700000000</timestamp>
    <size>${d.bytes.length}</size>
  </data>
`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="${REPO}" xmlns:rpm="${RPM}">
  <revision>1700000000</revision>
${entries.join('')}</repomd>
`;
}

export interface YumRepoSpec {
  packages: RpmPackage[];
  compression: Compression;
  /** Replaces the primary.xml text (malformed cases). */
  primary?: Buffer;
  /** Changes the compressed primary after its checksum is taken (truncation, corruption). */
  tamper?: (compressed: Buffer) => Buffer;
  /** Checksum of the primary in repomd.xml taken from the tampered bytes (default) or forced. */
  primaryChecksum?: string;
  treeinfo?: string;
  listing?: string;
  /** Files to add beside (or instead of) what is built. */
  extra?: Map<string, Buffer>;
}

/** A yum repository: packages, repodata (primary and a filelists), repomd.xml, optional .treeinfo and listing. */
export function yumRepo(spec: YumRepoSpec): { files: Map<string, Buffer>; primaryHref: string; data: DataFile[] } {
  const files = new Map<string, Buffer>();
  for (const p of spec.packages) if (!p.xmlBase) files.set(p.href, p.bytes);
  let primary = compress(spec.compression, spec.primary ?? Buffer.from(primaryXml(spec.packages)));
  if (spec.tamper) primary = spec.tamper(primary);
  const primaryHref = `repodata/${sha256(primary)}-primary.xml.${spec.compression}`;
  const filelists = compress('gz', Buffer.from(`<?xml version="1.0"?>\n<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="0"/>\n`));
  const filelistsHref = `repodata/${sha256(filelists)}-filelists.xml.gz`;
  const data: DataFile[] = [
    { type: 'primary', href: primaryHref, bytes: primary, checksum: spec.primaryChecksum },
    { type: 'filelists', href: filelistsHref, bytes: filelists },
  ];
  files.set(primaryHref, primary);
  files.set(filelistsHref, filelists);
  files.set('repodata/repomd.xml', Buffer.from(repomdXml(data)));
  if (spec.treeinfo !== undefined) files.set('.treeinfo', Buffer.from(spec.treeinfo));
  if (spec.listing !== undefined) files.set('listing', Buffer.from(spec.listing));
  for (const [p, b] of spec.extra ?? []) files.set(p, b);
  return { files, primaryHref, data };
}

export function rpm(name: string, size = 64 + name.length): RpmPackage {
  return { name, href: `Packages/${name[0]}/${name}-1.0-1.noarch.rpm`, bytes: randomBytes(size) };
}

// ---- lazy-content instances ----

export interface Instance {
  lc: LazyContent;
  dataDir: string;
  close(): Promise<void>;
}

export async function instance(options: LazyContentOptions = {}): Promise<Instance> {
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-import-'));
  const lc = createLazyContent({ dataDir, logger: false, ...options });
  return {
    lc,
    dataDir,
    close: async () => {
      await lc.close();
      await fsp.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Everything the catalog holds: remotes (without their times) and every entry of each. */
export async function snapshot(lc: LazyContent): Promise<{ remotes: Array<Omit<RemoteView, 'createdAt' | 'updatedAt'>>; entries: CatalogEntry[] }> {
  const catalog = await lc.catalog();
  const views = await catalog.listRemotes();
  const entries: CatalogEntry[] = [];
  for (const r of views) entries.push(...(await catalog.entriesUnder(r.name, '')));
  entries.sort((a, b) => a.id - b.id);
  return { remotes: views.map(({ createdAt: _c, updatedAt: _u, ...rest }) => rest), entries };
}

/** The entries of a remote under a prefix, by path. */
export async function entriesByPath(lc: LazyContent, remote: string, prefix: string): Promise<Map<string, CatalogEntry>> {
  const catalog = await lc.catalog();
  return new Map((await catalog.entriesUnder(remote, prefix)).map((e) => [e.path, e]));
}
