import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { SaxesParser } from 'saxes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoUpstream, type DemoUpstream } from '../examples/demo-upstream/server.mjs';
import { request, type RawResponse } from './helpers/http.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Longest wait for an example to start or to exit: a bound, not an expectation. */
const WAIT_MS = 45_000;

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** GET (or another method) of an absolute URL or of a path on `base`. */
function fetchRaw(base: string, target: string, options: Parameters<typeof request>[2] = {}): Promise<RawResponse> {
  const url = new URL(target, base);
  return request(url.origin, url.pathname + url.search, options);
}

interface ManifestEntry {
  path: string;
  sha256: string;
  size: number;
}

async function manifestOf(upstream: DemoUpstream): Promise<ManifestEntry[]> {
  const res = await fetchRaw(upstream.fileRepoUrl, 'PULP_MANIFEST');
  expect(res.status).toBe(200);
  return res.body
    .toString('utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [p, digest, size] = line.split(',');
      return { path: p!, sha256: digest!, size: Number(size) };
    });
}

interface XmlElement {
  uri: string;
  local: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** A whole document as a tree, namespaces resolved; saxes throws on anything that is not well-formed. */
function parseXml(xml: string): XmlElement {
  const parser = new SaxesParser({ xmlns: true });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  parser.on('opentag', (tag) => {
    const attributes = Object.fromEntries(Object.entries(tag.attributes).map(([name, a]) => [name, a.value]));
    const element: XmlElement = { uri: tag.uri, local: tag.local, attributes, children: [], text: '' };
    stack.at(-1)?.children.push(element);
    root ??= element;
    stack.push(element);
  });
  parser.on('text', (text) => {
    const top = stack.at(-1);
    if (top) top.text += text;
  });
  parser.on('closetag', () => void stack.pop());
  parser.write(xml).close();
  return root!;
}

const childrenOf = (element: XmlElement, local: string) => element.children.filter((c) => c.local === local);
function childOf(element: XmlElement, local: string): XmlElement {
  const found = childrenOf(element, local);
  expect(found, `<${element.local}> has one <${local}>`).toHaveLength(1);
  return found[0]!;
}

const REPO_NS = 'http://linux.duke.edu/metadata/repo';
const COMMON_NS = 'http://linux.duke.edu/metadata/common';
const RPM_NS = 'http://linux.duke.edu/metadata/rpm';

describe('demo upstream', () => {
  let upstream: DemoUpstream;
  beforeAll(async () => {
    upstream = await startDemoUpstream({ port: 0 });
  });
  afterAll(() => upstream?.close());

  it('serves a Pulp file repository whose PULP_MANIFEST matches the bytes it serves', async () => {
    const manifest = await manifestOf(upstream);
    expect(manifest.length).toBeGreaterThanOrEqual(4);
    expect(manifest.some((e) => e.path.includes('/'))).toBe(true);
    for (const entry of manifest) {
      const res = await fetchRaw(upstream.fileRepoUrl, entry.path);
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe(String(entry.size));
      expect(res.body.length).toBe(entry.size);
      expect(sha256(res.body)).toBe(entry.sha256);
    }
    // The same seed makes the same bytes.
    const again = await startDemoUpstream({ port: 0 });
    try {
      expect(await manifestOf(again)).toEqual(manifest);
    } finally {
      await again.close();
    }
  });

  it('answers HEAD and Range requests and counts requests per path', async () => {
    const [large] = (await manifestOf(upstream)).sort((a, b) => b.size - a.size);
    const urlPath = new URL(large!.path, upstream.fileRepoUrl).pathname;
    const before = upstream.requests(urlPath);
    const full = (await fetchRaw(upstream.fileRepoUrl, large!.path)).body;
    for (const [range, start, end] of [
      ['bytes=0-0', 0, 1],
      ['bytes=12345-99999', 12345, 100000],
      [`bytes=${large!.size - 17}-`, large!.size - 17, large!.size],
      ['bytes=-100', large!.size - 100, large!.size],
    ] as const) {
      const res = await fetchRaw(upstream.fileRepoUrl, large!.path, { headers: { range } });
      expect(res.status, range).toBe(206);
      expect(res.headers['content-range']).toBe(`bytes ${start}-${end - 1}/${large!.size}`);
      expect(res.headers['content-length']).toBe(String(end - start));
      expect(res.body.equals(full.subarray(start, end)), range).toBe(true);
    }
    const unsatisfiable = await fetchRaw(upstream.fileRepoUrl, large!.path, { headers: { range: `bytes=${large!.size}-` } });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers['content-range']).toBe(`bytes */${large!.size}`);

    const head = await fetchRaw(upstream.fileRepoUrl, large!.path, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(large!.size));
    expect(head.body.length).toBe(0);

    // One GET of the whole file, four ranges, one 416, one HEAD.
    expect(upstream.requests(urlPath) - before).toBe(7);
    const counted = await fetchRaw(upstream.url, `/_requests?path=${encodeURIComponent(urlPath)}`);
    expect(JSON.parse(counted.body.toString())).toEqual({ path: urlPath, count: before + 7 });
    expect(upstream.requests('/file/not-there')).toBe(0);
  });

  it('serves a yum repository whose repodata is consistent: repomd.xml → primary, filelists, other → packages', async () => {
    const repomdRes = await fetchRaw(upstream.yumRepoUrl, 'repodata/repomd.xml');
    expect(repomdRes.status).toBe(200);
    const repomd = parseXml(repomdRes.body.toString('utf8'));
    expect([repomd.uri, repomd.local]).toEqual([REPO_NS, 'repomd']);

    const data = new Map(childrenOf(repomd, 'data').map((d) => [d.attributes.type, d]));
    expect([...data.keys()].sort()).toEqual(['filelists', 'other', 'primary']);
    const opened = new Map<string, string>();
    for (const [type, d] of data) {
      const checksum = childOf(d, 'checksum');
      const openChecksum = childOf(d, 'open-checksum');
      expect(checksum.attributes.type).toBe('sha256');
      expect(openChecksum.attributes.type).toBe('sha256');
      const href = childOf(d, 'location').attributes.href!;
      expect(href).toBe(`repodata/${checksum.text}-${type}.xml.gz`);
      expect(Number(childOf(d, 'timestamp').text)).toBeGreaterThan(0);

      const res = await fetchRaw(upstream.yumRepoUrl, href);
      expect(res.status).toBe(200);
      expect(sha256(res.body)).toBe(checksum.text);
      expect(res.body.length).toBe(Number(childOf(d, 'size').text));
      const open = gunzipSync(res.body);
      expect(sha256(open)).toBe(openChecksum.text);
      expect(open.length).toBe(Number(childOf(d, 'open-size').text));
      opened.set(type!, open.toString('utf8'));
    }

    const primary = parseXml(opened.get('primary')!);
    expect([primary.uri, primary.local]).toEqual([COMMON_NS, 'metadata']);
    const packages = childrenOf(primary, 'package');
    expect(packages.length).toBeGreaterThanOrEqual(3);
    expect(Number(primary.attributes.packages)).toBe(packages.length);
    for (const pkg of packages) {
      expect(pkg.attributes.type).toBe('rpm');
      const checksum = childOf(pkg, 'checksum');
      expect(checksum.attributes).toMatchObject({ type: 'sha256', pkgid: 'YES' });
      const href = childOf(pkg, 'location').attributes.href!;
      expect(href).toMatch(new RegExp(`^Packages/${childOf(pkg, 'name').text}-.+\\.${childOf(pkg, 'arch').text}\\.rpm$`));
      const format = childOf(pkg, 'format');
      expect(format.children.filter((c) => c.local !== 'file').every((c) => c.uri === RPM_NS)).toBe(true);
      const res = await fetchRaw(upstream.yumRepoUrl, href);
      expect(res.status).toBe(200);
      expect(sha256(res.body)).toBe(checksum.text);
      expect(res.body.length).toBe(Number(childOf(pkg, 'size').attributes.package));
    }
    for (const type of ['filelists', 'other']) {
      const doc = parseXml(opened.get(type)!);
      expect(childrenOf(doc, 'package').map((p) => p.attributes.pkgid).sort()).toEqual(packages.map((p) => childOf(p, 'checksum').text).sort());
    }
  });
});

interface RunningExample {
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string | null>;
  output(): string;
}

/** Starts `node examples/<name>/server.mjs` on a free port and waits for its `listening on <url>` line. */
function startExample(name: string, env: Record<string, string>): Promise<RunningExample> {
  const child = spawn(process.execPath, [path.join(root, 'examples', name, 'server.mjs')], {
    cwd: root,
    env: { ...process.env, LAZY_CONTENT_LOG_LEVEL: 'warn', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`examples/${name} printed no "listening on" line:\n${output}`));
    }, WAIT_MS);
    // Both streams are read for the whole life of the child, so that it never blocks on a full pipe.
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const m = /^listening on (http:\/\/\S+)$/m.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1]!, child, exited, output: () => output });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`examples/${name} exited (${code}) before listening:\n${output}`));
    });
  });
}

/** SIGTERM, then SIGKILL if the child has not exited within the bound. */
async function stop(example: RunningExample): Promise<number | string | null> {
  if (example.child.exitCode === null && example.child.signalCode === null) example.child.kill('SIGTERM');
  const timer = setTimeout(() => example.child.kill('SIGKILL'), WAIT_MS);
  try {
    return await example.exited;
  } finally {
    clearTimeout(timer);
  }
}

for (const framework of ['express', 'koa', 'nestjs']) {
  describe(`examples/${framework}`, () => {
    let upstream: DemoUpstream;
    let manifest: ManifestEntry[];
    let dataDir: string;
    let app: RunningExample | undefined;

    beforeAll(async () => {
      upstream = await startDemoUpstream({ port: 0 });
      manifest = await manifestOf(upstream);
      dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), `lc-example-${framework}-`));
      app = await startExample(framework, { DATA_DIR: dataDir, UPSTREAM_URL: upstream.fileRepoUrl });
    });
    afterAll(async () => {
      if (app) await stop(app);
      await upstream?.close();
      if (dataDir) await fsp.rm(dataDir, { recursive: true, force: true });
    });

    it('answers its own routes beside lazy-content', async () => {
      const index = await fetchRaw(app!.url, '/');
      expect(index.status).toBe(200);
      expect(index.body.toString()).toContain('/content/');
      const health = await fetchRaw(app!.url, '/health');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body.toString())).toEqual({ status: 'ok' });
    });

    it('redirects a file of the imported manifest to the streamer, which returns its exact bytes after one upstream request', async () => {
      const entry = manifest.find((e) => e.path.includes('/'))!;
      const redirect = await fetchRaw(app!.url, `/content/demo-file/${entry.path}`);
      expect(redirect.status, app!.output()).toBe(302);
      const location = redirect.headers.location!;
      expect(new URL(location, app!.url).pathname).toBe(`/_lazy/stream/demo-file/${entry.path}`);

      const file = await fetchRaw(app!.url, location);
      expect(file.status).toBe(200);
      expect(file.body.length).toBe(entry.size);
      expect(sha256(file.body)).toBe(entry.sha256);
      expect(upstream.requests(new URL(entry.path, upstream.fileRepoUrl).pathname)).toBe(1);
    });

    it('answers 404 for a path that is not in the manifest, without asking the upstream', async () => {
      const res = await fetchRaw(app!.url, '/content/demo-file/not-in-the-manifest.bin');
      expect(res.status).toBe(404);
      expect(upstream.requests('/file/not-in-the-manifest.bin')).toBe(0);
    });

    it('closes cleanly on SIGTERM', async () => {
      expect(await stop(app!), app!.output()).toBe(0);
    });
  });
}
