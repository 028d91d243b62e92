import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, repoRoot } from './fixtures/entitlement.js';
import { REDIS_URL, redisAvailable } from './helpers/services.js';
import { startRepoServer } from './importers/repo-server.js';
import { makeTestPki } from './upstream/certs.js';
import { type FaultServer, startFaultServer } from './upstream/fault-server.js';

const CLI = path.join(repoRoot, 'packages/core/dist/cli/main.js');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Runs a program without blocking this process: the upstream server of these tests lives here, and a
 * synchronous spawn would stop it from answering the server under test.
 */
function exec(file: string, args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, encoding: 'buffer', timeout: 120_000, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const status = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ status, stdout, stderr: stderr.toString() });
    });
  });
}

async function run(args: string[], env: Record<string, string> = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const r = await exec(process.execPath, [CLI, ...args], { ...env, LAZY_CONTENT_LOG_LEVEL: 'warn' });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr };
}

function hasTool(name: string): boolean {
  // Before any server of this file runs, so blocking is harmless here.
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** Starts `lazy-content serve …` and resolves with its URL once it listens and has imported. */
async function serve(args: string[], dataDir: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data-dir', dataDir, ...args], {
    env: { ...process.env, LAZY_CONTENT_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  let url = '';
  for await (const line of lines) {
    const m = /listening on (\S+)\/content\//.exec(line);
    if (m) url = m[1]!;
    // The import's summary line comes once the catalog is filled.
    if (url && line.includes(' entries (')) break;
  }
  if (!url) throw new Error('lazy-content serve did not start');
  // Keep reading what it prints, so that it never writes into a closed pipe.
  child.stdout!.resume();
  return { url, child };
}

const curl = (args: string[]) => exec('curl', ['-sS', ...args]);

describe('lazy-content CLI: usage', () => {
  it('prints help for the program and for every command', async () => {
    const top = await run(['--help']);
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/Commands:/);
    for (const cmd of [['serve'], ['import'], ['worker'], ['catalog', 'ls'], ['queue', 'ls'], ['cache', 'ls']]) {
      const r = await run([...cmd, '--help']);
      expect(r.status, cmd.join(' ')).toBe(0);
      expect(r.stdout, cmd.join(' ')).toMatch(/^Usage: lazy-content /);
    }
  });

  it('says what is wrong in one line and exits with status 2', async () => {
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [[], /Usage|Commands/],
      [['frobnicate'], /unknown command "frobnicate"/],
      [['serve', '--port', 'eighty'], /--port must be a whole number/],
      [['serve', '--framework', 'hapi'], /--framework must be one of express, koa, nestjs/],
      [['serve', '--acceptors', '65'], /--acceptors must be a whole number from 0 to 64/],
      [['serve', '--bogus'], /bogus/],
      [['serve', '--type', 'yum'], /--type must follow --import/],
      [['serve', '--import', 'http://127.0.0.1:1/'], /needs --prefix/],
      [['serve', '--import', 'not a url', '--prefix', '/content/x/'], /absolute URL/],
      [['serve', '--import', 'http://127.0.0.1:1/', '--prefix', '/elsewhere/'], /must start with \/content\//],
      [['serve', '--client-ca', '/nonexistent.pem'], /no such file/],
      [['serve', '--tls-cert', 'x.pem'], /go together/],
      [['import'], /needs the URL/],
      [['queue', 'ls', '--state', 'sleeping'], /--state must be/],
      [['catalog'], /needs a subcommand/],
      [['serve'], /--port must be a whole number/, { LAZY_CONTENT_PORT: 'abc' }],
    ];
    for (const [args, message, env] of cases) {
      const r = await run(args, env);
      if (args.length === 0) {
        expect(r.status).toBe(2);
        continue;
      }
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });
});

describe('lazy-content worker', () => {
  it('stays up while idle on the embedded SQLite queue, and exits 0 on SIGTERM', async () => {
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-cli-worker-'));
    const child = spawn(process.execPath, [CLI, 'worker', '--data-dir', dataDir, '--root', path.join(dataDir, 'content')], {
      env: { ...process.env, LAZY_CONTENT_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const lines = createInterface({ input: child.stdout! });
      for await (const line of lines) if (line.includes('worker started')) break;
      child.stdout!.resume();
      // Nothing to save and no socket open: a worker that let its process end here would be gone by now.
      const early = await Promise.race([exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('running'), 1500))]);
      expect(early).toBe('running');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await fsp.rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('lazy-content serve --resync and --redis', () => {
  it('imports the repository again every --resync seconds, and saves through the BullMQ queue on --redis', async (ctx) => {
    if (!(await redisAvailable())) ctx.skip();
    const upstream = await startFaultServer();
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-cli-resync-'));
    const name = `rs-${randomBytes(4).toString('hex')}`;
    const a = randomBytes(50_000);
    const b = randomBytes(70_000);
    const manifest = (files: Array<[string, Buffer]>) => Buffer.from(files.map(([n, bytes]) => `${n},${sha256(bytes)},${bytes.length}\n`).join(''));
    upstream.put('/r/a.bin', a);
    upstream.put('/r/b.bin', b);
    upstream.put('/r/PULP_MANIFEST', manifest([['a.bin', a]]));
    const status = async (url: string) => (await curl(['-o', '/dev/null', '-w', '%{http_code}', url])).stdout.toString();
    const eventually = async (check: () => Promise<boolean>, what: string) => {
      for (let i = 0; i < 200; i++) {
        if (await check()) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`gave up waiting: ${what}`);
    };
    const { url, child } = await serve(
      ['--import', `${upstream.origin}/r/`, '--type', 'file', '--prefix', `/content/${name}/`, '--policy', 'background', '--resync', '1', '--redis', REDIS_URL],
      dataDir,
    );
    try {
      // Policy background: the save is queued on BullMQ and done by the server's worker; once saved, the file
      // is answered directly (200) instead of redirected to the streamer (302).
      await eventually(async () => (await status(`${url}/content/${name}/a.bin`)) === '200', 'a.bin to be saved');
      expect(sha256((await curl(['-o', '-', `${url}/content/${name}/a.bin`])).stdout)).toBe(sha256(a));
      expect(await status(`${url}/content/${name}/b.bin`)).toBe('404');
      // A file added upstream appears within a resync or two, and is saved too.
      upstream.put('/r/PULP_MANIFEST', manifest([['a.bin', a], ['b.bin', b]]));
      await eventually(async () => (await status(`${url}/content/${name}/b.bin`)) === '200', 'b.bin to be imported and saved');
      expect(sha256((await curl(['-o', '-', `${url}/content/${name}/b.bin`])).stdout)).toBe(sha256(b));
      // Each file came from upstream once.
      expect(upstream.requests('/r/a.bin')).toBe(1);
      expect(upstream.requests('/r/b.bin')).toBe(1);
      expect(upstream.requests('/r/PULP_MANIFEST')).toBeGreaterThanOrEqual(2);
      // SIGTERM stops it, Redis clients included (they used to keep the process alive).
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      expect((await exited)[0]).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await upstream.close();
      await fsp.rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('never runs a resync while the previous one is still importing', async () => {
    const upstream = await startRepoServer();
    const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-cli-resync-slow-'));
    const a = randomBytes(1000);
    upstream.put('/slow/a.bin', a);
    upstream.put('/slow/PULP_MANIFEST', `a.bin,${sha256(a)},${a.length}\n`);
    const { child } = await serve(['--import', `${upstream.origin}/slow/`, '--type', 'file', '--prefix', '/content/slow/', '--resync', '1'], dataDir);
    try {
      // From now on each import takes 1.5 s, longer than the 1 s between resyncs.
      upstream.delay('/slow/PULP_MANIFEST', 1500);
      const manifests = () => upstream.requests.filter((r) => r === '/slow/PULP_MANIFEST').length;
      const start = manifests();
      for (let i = 0; i < 100 && manifests() < start + 3; i++) await new Promise((r) => setTimeout(r, 100));
      expect(manifests()).toBeGreaterThanOrEqual(start + 3);
      expect(upstream.maxInFlight('/slow/PULP_MANIFEST')).toBe(1);
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
      await upstream.close();
      await fsp.rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('lazy-content serve, end to end with real clients', () => {
  let upstream: FaultServer;
  let dir: string;
  const small = randomBytes(300_000);
  const large = randomBytes(24 * 1024 * 1024 + 123);
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    upstream = await startFaultServer();
    upstream.put('/repo/small.bin', small);
    upstream.put('/repo/iso/large.iso', large);
    upstream.put('/repo/PULP_MANIFEST', Buffer.from(`small.bin,${sha256(small)},${small.length}\niso/large.iso,${sha256(large)},${large.length}\n`));
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-cli-'));
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGTERM');
    await upstream.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  for (const framework of ['express', 'koa', 'nestjs']) {
    it(`${framework}: curl follows the redirect and gets the file; aria2c -x8 downloads a large file over ranged connections`, async () => {
      const dataDir = path.join(dir, framework);
      const { url, child } = await serve(['--framework', framework, '--import', `${upstream.origin}/repo/`, '--type', 'file', '--prefix', '/content/demo/'], dataDir);
      children.push(child);
      const got = await curl(['-L', '-o', '-', `${url}/content/demo/small.bin`]);
      expect(got.status, got.stderr).toBe(0);
      expect(sha256(got.stdout)).toBe(sha256(small));
      expect((await curl(['-o', '/dev/null', '-w', '%{http_code}', `${url}/content/demo/missing.bin`])).stdout.toString()).toBe('404');

      if (hasTool('aria2c')) {
        const out = path.join(dir, `${framework}-large.iso`);
        const a = await exec('aria2c', ['-q', '-x8', '-s8', '-k1M', '--allow-overwrite=true', '--auto-file-renaming=false', '-d', dir, '-o', path.basename(out), `${url}/content/demo/iso/large.iso`]);
        expect(a.status, a.stderr).toBe(0);
        expect(sha256(await fsp.readFile(out))).toBe(sha256(large));
      } else {
        console.warn('NOTICE: aria2c is not installed: the ranged download is skipped (.ci/run installs it)');
        if (process.env.LAZY_CONTENT_REQUIRE_SERVICES === '1') throw new Error('aria2c is required under LAZY_CONTENT_REQUIRE_SERVICES=1');
      }
      child.kill('SIGTERM');
    });
  }

  it('protects content with an entitlement certificate: curl --cert gets it, without one gets 403', async () => {
    const pki = makeTestPki();
    await fsp.writeFile(path.join(dir, 'server.pem'), pki.serverCert);
    await fsp.writeFile(path.join(dir, 'server-key.pem'), pki.serverKey);
    await fsp.writeFile(path.join(dir, 'ca.pem'), fixture('rhsm/katello-default-ca.crt'));
    await fsp.writeFile(path.join(dir, 'client.pem'), fixture('rhsm/v3/4260035510644027985.pem'));
    await fsp.writeFile(path.join(dir, 'client-key.pem'), fixture('rhsm/v3/4260035510644027985-key.pem'));
    const prefix = '/content/Default_Organization/Library/custom/foo/foo/';
    const { url, child } = await serve(
      [
        '--tls-cert', path.join(dir, 'server.pem'), '--tls-key', path.join(dir, 'server-key.pem'),
        '--client-ca', path.join(dir, 'ca.pem'), '--entitlement', 'rhsm', '--protect', '/content/',
        '--import', `${upstream.origin}/repo/`, '--prefix', prefix,
      ],
      path.join(dir, 'entitled'),
    );
    children.push(child);
    const withCert = await curl(['-k', '-L', '--cert', path.join(dir, 'client.pem'), '--key', path.join(dir, 'client-key.pem'), '-o', '-', `${url}${prefix}small.bin`]);
    expect(withCert.status, withCert.stderr).toBe(0);
    expect(sha256(withCert.stdout)).toBe(sha256(small));
    const without = (await curl(['-k', '-o', '-', '-w', '\n%{http_code}', `${url}${prefix}small.bin`])).stdout.toString();
    expect(without).toMatch(/no client certificate\n\n?403$/);
    child.kill('SIGTERM');
  });

  it('import, catalog ls, queue ls and cache ls|gc work on the same data folder', async () => {
    const dataDir = path.join(dir, 'admin');
    const imported = await run(['import', `${upstream.origin}/repo/`, '--prefix', '/content/admin/', '--policy', 'streamed', '--data-dir', dataDir]);
    expect(imported.status, imported.stderr).toBe(0);
    // The two files and PULP_MANIFEST itself (served fresh).
    expect(imported.stdout).toMatch(/3 entries \(3 added, 0 updated, 0 removed\)/);
    const again = await run(['import', `${upstream.origin}/repo/`, '--prefix', '/content/admin/', '--data-dir', dataDir]);
    expect(again.stdout).toMatch(/3 entries \(0 added, 0 updated, 0 removed\)/);
    const ls = await run(['catalog', 'ls', '--data-dir', dataDir]);
    expect(ls.status).toBe(0);
    expect(ls.stdout).toMatch(/admin\/iso\/large\.iso\tadmin\t25165947/);
    expect(ls.stdout).toMatch(/3 of 3 entries/);
    expect((await run(['queue', 'ls', '--data-dir', dataDir])).stdout).toMatch(/0 tasks/);
    expect((await run(['queue', 'retry', 'admin/small.bin', '--data-dir', dataDir])).status).toBe(1);
    expect((await run(['cache', 'ls', '--data-dir', dataDir])).stdout).toMatch(/0 files, 0 bytes/);
    expect((await run(['cache', 'gc', '--data-dir', dataDir])).stdout).toMatch(/0 leftover files removed/);
  });
});
