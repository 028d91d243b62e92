// Where a benchmark server spends its time: runs one of bench/servers/<name>.mjs under `node --cpu-prof`,
// loads it with wrk, stops it, and prints the functions with the most self time, and the same time summed
// by package (express, router, koa, @lazy-content/core, node internals, …).
//
//   node bench/profile.mjs [server] [file]        e.g. node bench/profile.mjs express-lazy small
//
//   server: a file name in bench/servers without .mjs (default express-lazy)
//   file:   small (4 KiB, default) or large (64 MiB)
//   BENCH_SECONDS=10 length of the profiled load; BENCH_TOP=25 functions listed; BENCH_PROFILE_DIR keeps the
//   .cpuprofile there (open it in Chrome DevTools) instead of a temporary folder.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const serverName = process.argv[2] ?? 'express-lazy';
const which = process.argv[3] ?? 'small';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TOP = Number(process.env.BENCH_TOP ?? 25);
if (!['small', 'large'].includes(which)) throw new Error('file must be small or large');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'lazy-content-profile-'));
const root = path.join(tmp, 'files');
mkdirSync(root);
writeFileSync(path.join(root, 'small.bin'), randomBytes(4096));
if (which === 'large') writeFileSync(path.join(root, 'large.bin'), randomBytes(64 * 1024 * 1024));
const profDir = process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : path.join(tmp, 'prof');
mkdirSync(profDir, { recursive: true });

let server;
let wrk;
const cleanup = () => {
  for (const c of [wrk, server]) {
    if (c && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  rmSync(tmp, { recursive: true, force: true });
};
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));
const guard = setTimeout(() => {
  process.stderr.write('profile: time limit exceeded\n');
  process.exit(1);
}, (SECONDS + 60) * 1000);
guard.unref();

server = spawn(
  process.execPath,
  ['--cpu-prof', `--cpu-prof-dir=${profDir}`, path.join(here, 'servers', `${serverName}.mjs`), '--root', root],
  { cwd: tmp, detached: true, stdio: ['ignore', 'pipe', 'inherit'] },
);
const port = await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
    const m = /^ready (\d+)$/m.exec(out);
    if (m) resolve(Number(m[1]));
  });
  server.once('exit', (code) => reject(new Error(`${serverName} exited (${code})`)));
});
const prefix = serverName === 'koa-static' ? '/' : '/content/';
const url = `http://127.0.0.1:${port}${prefix}${which}.bin`;
const args = ['-t1', '-c50', `-d${SECONDS}s`, '--timeout', '30s', url];
console.log(`profiling ${serverName} under: wrk ${args.join(' ')}`);
const wrkOut = await new Promise((resolve, reject) => {
  wrk = spawn('wrk', args, { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  wrk.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  wrk.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}`))));
});
console.log(wrkOut.split('\n').filter((l) => /Requests\/sec|Transfer\/sec|requests in|Non-2xx/.test(l)).join('\n'));

const exited = new Promise((r) => server.once('exit', r));
process.kill(-server.pid, 'SIGTERM');
await exited;
const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error('no .cpuprofile written');
const profile = JSON.parse(readFileSync(path.join(profDir, file), 'utf8'));

// Self time per node = its samples × the mean sampling interval.
const total = profile.endTime - profile.startTime; // µs
const counts = new Map();
for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
const interval = total / profile.samples.length;
const byFunction = new Map();
const byPackage = new Map();
function packageOf(url) {
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return 'node internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.includes('/packages/')) return `@lazy-content/${url.split('/packages/')[1].split('/')[0]}`;
  if (url.includes('/bench/')) return 'bench server';
  return url;
}
for (const node of profile.nodes) {
  const n = counts.get(node.id) ?? 0;
  if (!n) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || '(anonymous)';
  const where = url ? `${url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '')}:${lineNumber + 1}` : '';
  const key = `${name} ${where}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + n);
  const pkg = ['(idle)', '(program)', '(garbage collector)'].includes(name) ? name : packageOf(url);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + n);
}
const pct = (n) => `${((n / profile.samples.length) * 100).toFixed(1).padStart(5)}%`;
console.log(`\n${profile.samples.length} samples over ${(total / 1e6).toFixed(1)} s (every ${interval.toFixed(0)} µs)`);
console.log('\nself time by package:');
for (const [k, n] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(n)}  ${k}`);
console.log(`\ntop ${TOP} functions by self time:`);
for (const [k, n] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${pct(n)}  ${k}`);
if (process.env.BENCH_PROFILE_DIR) console.log(`\nprofile kept: ${path.join(profDir, file)}`);
process.exit(0);
