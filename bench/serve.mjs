// Saved-content benchmark: how fast each lazy-content adapter serves a file that is already saved, next to
// express.static, koa-static, a bare node:http file server and nginx (the ceiling).
//
//   npm run bench                 (tsc -b, then this file)
//   node bench/serve.mjs
//
// Environment:
//   BENCH_SECONDS=10   length of each measurement, in seconds (a quick run: BENCH_SECONDS=2)
//   BENCH_WARMUP=2     warm-up before each measurement, in seconds
//   BENCH_ROUNDS=1     rounds over all servers; with more than one the table shows each figure's median
//   BENCH_QUIET_WAIT=60  before each measurement, wait up to this many seconds for other processes on the
//                      machine to go quiet (below 0.15 CPU); the load seen is printed with each measurement
//   BENCH_RETRIES=2    a measurement during which other processes used more than 0.25 CPU is done again, up to
//                      this many times; the least disturbed attempt is kept (every attempt is printed)
//   BENCH_ONLY=a,b     run only these servers (names as in the table, e.g. express-lazy,express-static)
//   BENCH_JSON=file    also write the results as JSON to this file
//   NGINX=/usr/sbin/nginx   the nginx binary
//
// Each server runs alone in its own child process (bench/servers/<name>.mjs), on 127.0.0.1 with a port the
// kernel chooses, and is stopped before the next one starts. Every step is bounded in time; children are
// killed (their whole process group) on exit, on SIGINT/SIGTERM and on errors.
//
// Other benchmarks (bench/entitlement.mjs) import the helpers exported here (children, quiet-machine wait,
// measurement with retries, wrk, servers, machine description); the benchmark itself runs only when this
// file is the program (`node bench/serve.mjs`).
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SECONDS = positiveNumber('BENCH_SECONDS', 10);
export const WARMUP = positiveNumber('BENCH_WARMUP', 2, true);
export const ROUNDS = positiveNumber('BENCH_ROUNDS', 1);
export const QUIET_WAIT = positiveNumber('BENCH_QUIET_WAIT', 60, true);
/** Other processes using more CPU than this (in CPUs) before a measurement: wait, then warn. */
const QUIET_CPUS = 0.15;
/** Other processes using more than this (in CPUs) during a measurement: it is disturbed, and done again. */
const DISTURBED_CPUS = 0.25;
export const RETRIES = positiveNumber('BENCH_RETRIES', 2, true);
export const THREADS = 1;
export const CONNECTIONS = 50;
const WRK = 'wrk';
const WRK_SCRIPT = path.join(here, 'wrk-report.lua');
const START_TIMEOUT_MS = 30_000;
const VERIFY_TIMEOUT_MS = 30_000;

const SMALL = { name: 'small.bin', size: 4 * 1024, label: '4 KiB' };
const LARGE = { name: 'large.bin', size: 64 * 1024 * 1024, label: '64 MiB' };

/** `urlPrefix`: where the folder's files are found on that server. */
const SERVERS = [
  { name: 'express-lazy', title: 'Express 5 + @lazy-content/express', lazy: true, urlPrefix: '/content/' },
  { name: 'koa-lazy', title: 'Koa 3 + @lazy-content/koa', lazy: true, urlPrefix: '/content/' },
  { name: 'nest-lazy', title: 'NestJS 12 (platform-express) + LazyContentModule', lazy: true, urlPrefix: '/content/' },
  { name: 'express-static', title: 'Express 5 + express.static (serve-static)', baseline: true, urlPrefix: '/content/' },
  // koa-mount is not installed: koa-static serves the folder at the site's root.
  { name: 'koa-static', title: 'Koa 3 + koa-static (folder at /, no koa-mount)', urlPrefix: '/' },
  { name: 'node-http', title: 'node:http + fs.stat + fs.createReadStream', urlPrefix: '/content/' },
  { name: 'nginx', title: 'nginx (sendfile, worker_processes auto)', urlPrefix: '/content/' },
];

const GOAL_SMALL = 1.5;
const GOAL_LARGE = 0.9;

export function positiveNumber(name, fallback, zeroOk = false) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (!zeroOk && n === 0) || !Number.isInteger(n)) {
    throw new Error(`${name} must be a whole number of seconds${zeroOk ? '' : ' above 0'}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// Children: every process we start is remembered and killed (with its process group) whatever happens.

const children = new Set();
let tmpDir;

export function killChild(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (child.groupLeader) process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    // already gone
  }
}

function cleanupSync() {
  for (const child of children) killChild(child, 'SIGKILL');
  children.clear();
  if (tmpDir) {
    rmSync(tmpDir, { recursive: true, force: true });
    tmpDir = undefined;
  }
}

process.on('exit', cleanupSync);
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping\n`);
    cleanupSync();
    process.exit(code);
  });
}

export function track(child, groupLeader) {
  child.groupLeader = groupLeader;
  children.add(child);
  child.once('exit', () => {
    // The leader is gone; make sure nothing it started is left in its group.
    if (groupLeader) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // empty group
      }
    }
    children.delete(child);
  });
  return child;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** Busy and total jiffies of the whole machine, from /proc/stat; null where there is none. */
export function cpuTimes() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** CPUs in use over `ms` by everything on the machine (call it while our own processes are idle). */
export async function machineLoad(ms = 1000) {
  const a = cpuTimes();
  await sleep(ms);
  const b = cpuTimes();
  if (!a || !b || b.total === a.total) return null;
  return ((b.busy - a.busy) / (b.total - a.total)) * os.cpus().length;
}

/**
 * Before a measurement, while the server under test is idle: waits (at most BENCH_QUIET_WAIT s) for the rest
 * of the machine to go quiet, so that another job's load is not measured as this server's slowness.
 * Returns the load last seen, in CPUs.
 */
export async function waitQuiet() {
  const deadline = Date.now() + QUIET_WAIT * 1000;
  let load = await machineLoad();
  let told = false;
  while (load !== null && load > QUIET_CPUS && Date.now() < deadline) {
    if (!told) process.stdout.write(`  (other processes use ${load.toFixed(2)} CPU: waiting up to ${QUIET_WAIT} s for quiet)\n`);
    told = true;
    load = await machineLoad();
  }
  if (load !== null && load > QUIET_CPUS) {
    process.stdout.write(`  WARNING: other processes still use ${load.toFixed(2)} CPU: this measurement is disturbed\n`);
  }
  return load;
}

/** CPU ticks used so far by this process and its reaped children (wrk) and by the server's process group. */
/** CPU ticks (utime + stime, and with `withChildren` those of reaped children) from a /proc/<pid>/stat text. */
function ticks(stat, withChildren) {
  // Fields after the command name, which is in parentheses and may contain spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const n = Number(f[11]) + Number(f[12]); // utime + stime
  return withChildren ? n + Number(f[13]) + Number(f[14]) : n; // + cutime + cstime
}

/** CPU ticks used so far by one process (all its threads); null when it cannot be read. */
export function processTicks(pid) {
  try {
    return ticks(readFileSync(`/proc/${pid}/stat`, 'utf8'), false);
  } catch {
    return null;
  }
}

export function ourTicks(groupId) {
  let sum = ticks(readFileSync('/proc/self/stat', 'utf8'), true);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp === groupId) sum += ticks(stat, true);
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

export function loadMark(groupId) {
  const machine = cpuTimes();
  if (!machine) return null;
  try {
    return { machine, ours: ourTicks(groupId) };
  } catch {
    return null;
  }
}

/**
 * CPUs used by processes other than ours (this runner, wrk, the server's process group) since `mark`: the
 * machine's busy time less ours. Softirq work that the kernel does for our own sockets may count a little.
 */
export function otherLoadSince(mark, groupId) {
  if (!mark) return null;
  const machine = cpuTimes();
  let ours;
  try {
    ours = ourTicks(groupId);
  } catch {
    return null;
  }
  const total = machine.total - mark.machine.total;
  if (total <= 0) return null;
  const other = machine.busy - mark.machine.busy - (ours - mark.ours);
  return Math.max(0, (other / total) * os.cpus().length);
}

export const isDisturbed = (run) => (run.otherCpusDuring ?? 0) > DISTURBED_CPUS;

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------------------
// The files.

function makeFiles() {
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'lazy-content-bench-'));
  // Readable by nginx workers, whatever user they run as.
  chmodSync(tmpDir, 0o755);
  const root = path.join(tmpDir, 'files');
  mkdirSync(root, { mode: 0o755 });
  const digests = {};
  for (const file of [SMALL, LARGE]) {
    const hash = createHash('sha256');
    const fd = openSync(path.join(root, file.name), 'w', 0o644);
    try {
      const chunk = 1024 * 1024;
      for (let done = 0; done < file.size; done += chunk) {
        const bytes = randomBytes(Math.min(chunk, file.size - done));
        hash.update(bytes);
        writeSync(fd, bytes);
      }
    } finally {
      closeSync(fd);
    }
    digests[file.name] = hash.digest('hex');
  }
  return { root, digests };
}

// ---------------------------------------------------------------------------------------------------------
// A server.

/**
 * Starts bench/servers/<server.name>.mjs in its own process group; `server.args` are appended to its
 * arguments, `server.nodeArgs` (e.g. ['--cpu-prof']) go to node before the script.
 */
export async function startServer(server, root) {
  const script = path.join(here, 'servers', `${server.name}.mjs`);
  const argv = [...(server.nodeArgs ?? []), script, '--port', '0', '--host', '127.0.0.1', '--root', root, ...(server.args ?? [])];
  const child = track(
    spawn(process.execPath, argv, {
      // lazy-content's dataDir defaults to ./.lazy-content: keep it in the temporary folder, not the work tree.
      cwd: path.dirname(root),
      env: { ...process.env, BENCH_TMP: path.dirname(root) },
      detached: true, // its own process group, so that nginx's workers go with it
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    true,
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
  });
  const port = await withTimeout(
    new Promise((resolve, reject) => {
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d) => {
        out += d;
        const m = /^ready (\d+)$/m.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code, signal) =>
        reject(new Error(`${server.name} exited before it was ready (${signal ?? code}):\n${stderr}`)),
      );
      child.once('error', reject);
    }),
    START_TIMEOUT_MS,
    `starting ${server.name}`,
  ).catch((err) => {
    killChild(child, 'SIGKILL');
    throw err;
  });
  return { child, port, stderr: () => stderr };
}

export async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  killChild(child, 'SIGTERM');
  const t = setTimeout(() => killChild(child, 'SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

/** One plain GET per file before any load: right status, right length, right bytes. */
export async function verify(url, expectedSize, expectedDigest) {
  const res = await withTimeout(fetch(url), VERIFY_TIMEOUT_MS, `GET ${url}`);
  if (res.status !== 200) throw new Error(`GET ${url}: status ${res.status}, expected 200`);
  const hash = createHash('sha256');
  let size = 0;
  const body = res.body;
  await withTimeout(
    (async () => {
      for await (const chunk of body) {
        size += chunk.length;
        hash.update(chunk);
      }
    })(),
    VERIFY_TIMEOUT_MS,
    `reading ${url}`,
  );
  if (size !== expectedSize) throw new Error(`GET ${url}: ${size} bytes, expected ${expectedSize}`);
  if (hash.digest('hex') !== expectedDigest) throw new Error(`GET ${url}: the bytes differ from the file`);
}

// ---------------------------------------------------------------------------------------------------------
// wrk.

/** `extra`: more wrk arguments, put before the URL (e.g. ['-H', 'x-client-cert: …']). */
export function wrkArgs(seconds, url, extra = []) {
  return [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '30s', '-s', WRK_SCRIPT, ...extra, url];
}

/**
 * Runs a load generator that prints its figures as one `MARKER {json}` line; resolves with that JSON and
 * everything it printed. It is killed, and the promise rejects, after `timeoutMs`.
 */
export function runReporting(command, args, { marker, what, timeoutMs, cannotRun = (e) => e }) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }), false);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    const limit = setTimeout(() => {
      killChild(child, 'SIGKILL');
      reject(new Error(`${what} did not finish within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(limit);
      reject(cannotRun(e));
    });
    child.once('exit', (code) => {
      clearTimeout(limit);
      const m = new RegExp(`^${marker} (\\{.*\\})$`, 'm').exec(out);
      if (code !== 0 || !m) {
        reject(new Error(`${what} failed (exit ${code}):\n${out}${err}`));
        return;
      }
      resolve({ report: JSON.parse(m[1]), out });
    });
  });
}

export async function runWrk(seconds, url, extra = []) {
  const args = wrkArgs(seconds, url, extra);
  const { report: r, out } = await runReporting(WRK, args, {
    marker: 'WRK_REPORT',
    what: `wrk ${shortArgs(args)}`,
    timeoutMs: (seconds + 30) * 1000,
    cannotRun: (e) => new Error(`cannot run wrk (apt-get install -y wrk): ${e.message}`),
  });
  const secs = r.duration_us / 1e6;
  return {
    ...r,
    seconds: secs,
    reqPerSec: r.requests / secs,
    gbPerSec: r.bytes / secs / 1e9,
    socketErrors: r.connect_errors + r.read_errors + r.write_errors,
    text: out.replace(/^WRK_REPORT .*\n?/m, ''),
  };
}

/** wrk's arguments for a message, long ones (a certificate in a header) shortened. */
const shortArgs = (args) => args.map((a) => (a.length > 200 ? `${a.slice(0, 60)}…(${a.length} chars)` : a)).join(' ');

// ---------------------------------------------------------------------------------------------------------
// One measurement on a quiet machine, done again when other processes disturbed it.

/**
 * Waits for a quiet machine, runs `run()` (which resolves to an object), notes how much CPU other processes
 * used meanwhile (processes other than this runner, its reaped children such as wrk, and the process group
 * `groupId` of the server), and runs it again, up to BENCH_RETRIES times, while that was above 0.25 CPU;
 * returns the least disturbed attempt, with `otherCpusBefore`, `otherCpusDuring` and `attempt` set.
 * `check(result)` may throw to stop the benchmark (wrong answers); `describe(result)` is the line printed for
 * every attempt (the other load is appended).
 */
export async function measureQuietly({ groupId, run, check = () => {}, describe }) {
  let r;
  for (let attempt = 0; ; attempt++) {
    const before = await waitQuiet();
    const mark = loadMark(groupId);
    const result = await run();
    check(result);
    result.otherCpusBefore = before;
    result.otherCpusDuring = otherLoadSince(mark, groupId);
    result.attempt = attempt + 1;
    const other = result.otherCpusDuring === null ? '' : `  other load ${result.otherCpusDuring.toFixed(2)} CPU`;
    console.log(`${describe(result)}${other}`);
    if (!r || (result.otherCpusDuring ?? 0) < (r.otherCpusDuring ?? 0)) r = result;
    if (!isDisturbed(result) || attempt >= RETRIES) break;
    console.log(`  (disturbed by other processes: measuring again, ${RETRIES - attempt} attempt(s) left)`);
  }
  if (r.attempt > 1 || isDisturbed(r)) {
    console.log(`  kept attempt ${r.attempt}${isDisturbed(r) ? ' (STILL DISTURBED by other processes)' : ''}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Output.

export function machine() {
  const cpus = os.cpus();
  const wrkVersion = (spawnSync(WRK, ['-v'], { encoding: 'utf8', timeout: 5000 }).stdout || '').split('\n')[0].trim();
  const nginx = spawnSync(process.env.NGINX ?? '/usr/sbin/nginx', ['-v'], { encoding: 'utf8', timeout: 5000 });
  const nginxVersion = (nginx.stderr || nginx.stdout || '').trim() || 'not found';
  const git = (...a) => spawnSync('git', a, { cwd: path.dirname(here), encoding: 'utf8', timeout: 5000 }).stdout?.trim() ?? '';
  const dirty = git('status', '--porcelain', '--', 'packages')
    .split('\n')
    .filter(Boolean).length;
  return {
    commit: `${git('rev-parse', '--short', 'HEAD') || 'unknown'}${dirty ? ` + ${dirty} uncommitted change(s) under packages/` : ''}`,
    nproc: os.availableParallelism?.() ?? cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    memoryGiB: (os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    wrk: wrkVersion.replace(/\s*Copyright.*$/, ''),
    nginx: nginxVersion.replace(/^nginx version:\s*/, ''), // e.g. nginx/1.22.1
  };
}

export const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
export const fmtRatio = (n) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : 'n/a');

function table(results, baseline) {
  const head = ['server', '4 KiB req/s', 'ratio vs express.static', '64 MiB GB/s', 'ratio vs express.static', '64 MiB req/s'];
  const rows = results.map((r) => [
    r.name,
    fmtInt(r.small.reqPerSec),
    baseline ? fmtRatio(r.small.reqPerSec / baseline.small.reqPerSec) : 'n/a',
    r.large.gbPerSec.toFixed(2),
    baseline ? fmtRatio(r.large.gbPerSec / baseline.large.gbPerSec) : 'n/a',
    r.large.reqPerSec.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
  if (only) {
    const unknown = [...only].filter((n) => !SERVERS.some((s) => s.name === n));
    if (unknown.length) throw new Error(`BENCH_ONLY: unknown server(s) ${unknown.join(', ')}`);
  }
  const servers = SERVERS.filter((s) => !only || only.has(s.name));

  if (spawnSync(WRK, ['-v'], { timeout: 5000 }).error) throw new Error('wrk is missing: apt-get install -y wrk');
  if (servers.some((s) => s.name === 'nginx') && spawnSync(process.env.NGINX ?? '/usr/sbin/nginx', ['-v'], { timeout: 5000 }).error) {
    throw new Error('nginx is missing: apt-get install -y nginx-light (or BENCH_ONLY without nginx)');
  }

  // Whole run bounded: start, verify, 2 warm-ups and 2 measurements per server, with slack.
  const budgetS = ROUNDS * servers.length * (2 * WARMUP + 2 * (RETRIES + 1) * (SECONDS + QUIET_WAIT + 2) + 60) + 60;
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: time budget of ${budgetS} s exceeded, stopping\n`);
    cleanupSync();
    process.exit(1);
  }, budgetS * 1000);
  watchdog.unref();

  const m = machine();
  const exampleCmd = `${WRK} ${wrkArgs(SECONDS, 'http://127.0.0.1:PORT/content/<file>').join(' ')}`.replace(WRK_SCRIPT, path.relative(process.cwd(), WRK_SCRIPT));
  const header = [
    `machine: ${m.nproc} CPUs (nproc), ${m.cpu}, ${m.memoryGiB} GiB, ${m.kernel}`,
    `node ${m.node}, ${m.wrk}, ${m.nginx}; lazy-content at ${m.commit} (packages as built in dist/)`,
    `wrk command: ${exampleCmd}`,
    `each server alone in its own process on 127.0.0.1; per file: ${WARMUP} s warm-up (same wrk command), then ${SECONDS} s measured; ${ROUNDS} round(s)`,
    `files: ${SMALL.label} (${SMALL.size} B) and ${LARGE.label} (${LARGE.size} B) of random bytes; GB/s = 10^9 bytes/s received by wrk (headers included)`,
  ].join('\n');
  console.log(header);
  console.log('');

  const { root, digests } = makeFiles();
  const rounds = []; // rounds[i][server name] = { small, large }
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`);
    const measuredRound = {};
    for (const server of servers) {
      process.stdout.write(`${server.name}: starting… `);
      const { child, port } = await startServer(server, root);
      try {
        const url = (file) => `http://127.0.0.1:${port}${server.urlPrefix}${file.name}`;
        await verify(url(SMALL), SMALL.size, digests[SMALL.name]);
        await verify(url(LARGE), LARGE.size, digests[LARGE.name]);
        process.stdout.write(`port ${port}, responses verified\n`);
        const measured = {};
        for (const file of [SMALL, LARGE]) {
          if (WARMUP > 0) await runWrk(WARMUP, url(file));
          const r = await measureQuietly({
            groupId: child.pid,
            run: () => runWrk(SECONDS, url(file)),
            check: (run) => {
              if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${server.name} died during the run`);
              if (run.status_errors !== 0) {
                throw new Error(`${server.name} ${file.label}: ${run.status_errors} non-2xx/3xx responses under load:\n${run.text}`);
              }
              // A short run may end before any 64 MiB response completes; bytes received still count.
              if (run.bytes === 0 || (file === SMALL && run.requests === 0)) {
                throw new Error(`${server.name} ${file.label}: nothing received under load:\n${run.text}`);
              }
            },
            describe: (run) => {
              const errs = run.socketErrors
                ? `, socket errors: connect ${run.connect_errors} read ${run.read_errors} write ${run.write_errors}`
                : '';
              return (
                `  ${file.label.padEnd(6)} ${fmtInt(run.reqPerSec).padStart(8)} req/s  ${run.gbPerSec.toFixed(3)} GB/s  ` +
                `${run.requests} requests in ${run.seconds.toFixed(2)} s  p50 ${(run.latency_p50_us / 1000).toFixed(2)} ms  ` +
                `p99 ${(run.latency_p99_us / 1000).toFixed(2)} ms  non-2xx/3xx 0${errs}`
              );
            },
          });
          measured[file === SMALL ? 'small' : 'large'] = r;
        }
        measuredRound[server.name] = measured;
      } finally {
        await stopServer(child);
      }
      await sleep(500);
    }
    rounds.push(measuredRound);
  }

  // One row per server: the median over rounds of each figure (with one round, the figure itself).
  const results = servers.map((server) => {
    const runs = rounds.map((r) => r[server.name]);
    const pick = (file, key) => median(runs.map((x) => x[file][key]));
    return {
      ...server,
      runs,
      small: { reqPerSec: pick('small', 'reqPerSec'), gbPerSec: pick('small', 'gbPerSec') },
      large: { reqPerSec: pick('large', 'reqPerSec'), gbPerSec: pick('large', 'gbPerSec') },
    };
  });

  const baseline = results.find((r) => r.baseline);
  console.log('');
  if (ROUNDS > 1) console.log(`median of ${ROUNDS} rounds:`);
  console.log(table(results, baseline));
  console.log('');
  if (baseline) {
    console.log(`goals: every lazy-content adapter ≥ ${GOAL_SMALL}× express.static req/s on 4 KiB, ≥ ${GOAL_LARGE}× its GB/s on 64 MiB`);
    for (const r of results.filter((x) => x.lazy)) {
      const s = r.small.reqPerSec / baseline.small.reqPerSec;
      const l = r.large.gbPerSec / baseline.large.gbPerSec;
      console.log(
        `  ${r.name.padEnd(14)} 4 KiB ${fmtRatio(s)} ${s >= GOAL_SMALL ? 'met' : 'NOT met'}; ` +
          `64 MiB ${fmtRatio(l)} ${l >= GOAL_LARGE ? 'met' : 'NOT met'}`,
      );
    }
  } else {
    console.log('(express.static was not run: no ratios)');
  }

  if (process.env.BENCH_JSON) {
    const strip = ({ text: _text, ...rest }) => rest;
    writeFileSync(
      process.env.BENCH_JSON,
      `${JSON.stringify(
        {
          machine: m,
          seconds: SECONDS,
          warmup: WARMUP,
          wrk: exampleCmd,
          rounds: ROUNDS,
          results: results.map((r) => ({
            name: r.name,
            title: r.title,
            small: r.small,
            large: r.large,
            runs: r.runs.map((x) => ({ small: strip(x.small), large: strip(x.large) })),
          })),
        },
        null,
        2,
      )}\n`,
    );
  }
}

/** Runs `main` as the program: exit 0 once done, 1 with the stack on a failure; children killed either way. */
export function runMain(main, name = 'bench') {
  main().then(
    () => {
      cleanupSync();
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`${name}: ${err.stack ?? err}\n`);
      cleanupSync();
      process.exit(1);
    },
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) runMain(main);
