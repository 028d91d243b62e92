// Fan-out benchmark (issue 4): many clients ask at once for a file that nobody has yet, from an origin
// limited to 32 MiB/s per connection. How many times is the file fetched upstream, how long until every
// client has it, how soon does each client get its first byte, and how much memory does the proxy need?
// lazy-content (Express 5: 302 to the streamer, one download streamed to every client from the disk cache)
// next to Varnish (beresp.do_stream), Squid (collapsed_forwarding) and nginx (proxy_cache_lock).
//
//   npx tsc -b && node bench/fanout.mjs
//
// Environment:
//   BENCH_SIZES=64,1024   file sizes in MiB, comma separated (a quick check: BENCH_SIZES=64)
//   BENCH_CLIENTS=50      concurrent curl clients per run
//   BENCH_RATE_MIB=32     the origin's limit per connection, in MiB/s
//   BENCH_ONLY=a,b        only these servers (lazy-content, lazy-content-no-digest, lazy-content-inline, varnish,
//                         squid, nginx, node-floor, node-floor-express, node-floor-2). The node-floor rows are
//                         not proxies: a Node server holding the file in memory that answers every client at
//                         once and sends at the origin's pace (bench/fanout/node-floor.mjs; node:http, Express 5,
//                         or two cluster workers): the best any Node.js server can do in this benchmark
//   BENCH_NO_DIGEST=1     also run lazy-content with a catalog entry without digest (0: skip that row)
//   BENCH_TIMEOUT=2400    bound of the whole script, in seconds (a full run takes 10 to 25 minutes on 2 CPUs)
//   BENCH_RETRIES=1       a run during which other processes used more than 0.25 CPU is done again, up to this
//                         many times; the least disturbed attempt is kept (every attempt is printed)
//   BENCH_QUIET_WAIT=20   before each run, wait up to this many seconds for other processes to go quiet
//   BENCH_WARMUP=1        before each measured run, CLIENTS clients at once download another file (1 MiB + 1 B)
//                         through the fresh server, twice (while it is fetched, then from the cache), so that
//                         what is measured is a running proxy rather than a process's first requests (V8
//                         compiles hot code only after it ran often; undici compiles its parser on first use).
//                         The same for every server. 0: measure the cold process
//   BENCH_ACCEPTORS=16    burstAccept's extra watchers of lazy-content's listening socket (0: Node's one accept
//                         per turn of the event loop)
//   BENCH_TRACE=DIR       lazy-content writes a timeline of each run to DIR (connections accepted per turn of its
//                         event loop, each request's time to its first bytes, the fill's events) and the script
//                         prints its summary (bench/fanout/trace.mjs)
//   BENCH_LAZY_NODE_ARGS  extra node options for the lazy-content child, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"
//   BENCH_JSON=file       also write the results as JSON
//   VARNISHD, SQUID, NGINX   the binaries (default /usr/sbin/…)
//
// Each run: a fresh server (empty cache, its own temporary folder) in front of one origin process
// (bench/fanout/origin.mjs, which counts requests); once it answers HTTP, CLIENTS curl processes
// (`curl -sS -L -o /dev/null -w …`, following lazy-content's 302) are spawned and held at a gate (each reads
// its URL from its standard input), then all released at once and awaited; each download must be 200 with
// the full size, else it is counted as failed and shown. Figures:
//   upstream fetches  requests the origin received for the file during the run (and the bytes it sent)
//   wall              from the release of the first client to the exit of the last
//   TTFB              curl's %{time_starttransfer} (with -L, summed over the redirect and the final request);
//                     median and p99 (nearest rank: with 50 clients, p99 is the slowest client)
//   peak memory       VmHWM from /proc/<pid>/status, summed over the server's processes (Varnish manager and
//                     worker, Squid, nginx master, workers and cache helpers; for lazy-content the Node process),
//                     read after the last client finished
//   server CPU        user + system CPU seconds of those processes during the clients' run (1.0 s per second
//                     of wall = one core busy); machine CPU busy: the share of all cores busy meanwhile
//                     (clients, origin and server together, and anything else running)
//   CPU by thread     lazy-content only: each thread's CPU seconds (main = the JavaScript thread) and the part
//                     the kernel spent on its behalf (socket writes are most of it)
//   other processes   CPU used meanwhile by processes that are not ours (other jobs on the machine): a run
//                     above 0.25 CPU is marked DISTURBED and done again (BENCH_RETRIES)
// Everything listens on 127.0.0.1 only. Every step is bounded in time, and every process started here is
// killed (with its process group) on exit, on errors and on SIGINT/SIGTERM.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { filePath, MiB, sha256Of } from './fanout/data.mjs';
import { nginx, squid, varnish } from './fanout/proxies.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

function envInt(name, fallback, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number ≥ ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

const SIZES_MIB = (process.env.BENCH_SIZES ?? '64,1024').split(',').map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 1 || n > 1100) throw new Error(`BENCH_SIZES: sizes are whole MiB from 1 to 1100, got ${JSON.stringify(s)}`);
  return n;
});
const CLIENTS = envInt('BENCH_CLIENTS', 50);
const RATE_MIB = envInt('BENCH_RATE_MIB', 32);
const RATE = RATE_MIB * MiB;
const TIMEOUT_S = envInt('BENCH_TIMEOUT', 2400);
const RETRIES = envInt('BENCH_RETRIES', 1, 0);
/** Other processes using more than this (in CPUs) during a run: it is disturbed, and done again. */
const DISTURBED_CPUS = 0.25;
const QUIET_WAIT_S = envInt('BENCH_QUIET_WAIT', 20, 0);
const NO_DIGEST = process.env.BENCH_NO_DIGEST !== '0';
const LAZY_NODE_ARGS = (process.env.BENCH_LAZY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const WARMUP = process.env.BENCH_WARMUP !== '0';
const CLIENT_NICE = envInt('BENCH_CLIENT_NICE', 0, 0);
/** burstAccept's extra watchers in the lazy-content server (`--acceptors`); 0 leaves Node's one accept per turn. */
const ACCEPTORS = envInt('BENCH_ACCEPTORS', 16, 0);
/** Where lazy-content writes a timeline of each run (bench/fanout/trace.mjs); none when unset. */
const TRACE_DIR = process.env.BENCH_TRACE ? path.resolve(process.env.BENCH_TRACE) : null;
const traceFile = (server, size) => path.join(TRACE_DIR, `${server.name}-${size}.json`);
/** The warm-up file: 1 MiB and a byte, another file than any measured one (so it is not cached for the run). */
const WARM_SIZE = 1024 * 1024 + 1;
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** Other processes using more CPU than this (in CPUs) before a run: wait for quiet, then warn. */
const QUIET_CPUS = 0.15;
const CLK_TCK = 100;

/**
 * The Node floor (bench/fanout/node-floor.mjs): a Node.js server that has the file in memory and answers at once,
 * with burstAccept as lazy-content's server; no upstream fetch. The lowest time to first byte a Node.js server
 * gets under this burst on this machine.
 */
function nodeFloor(withExpress, workers = 1) {
  return ({ port }) => ({
    files: {},
    command: process.execPath,
    args: [path.join(here, 'fanout', 'node-floor.mjs'), '--port', String(port), '--rate', String(RATE), '--acceptors', String(ACCEPTORS), ...(withExpress ? ['--express'] : []), '--workers', String(workers)],
    describe: `node bench/fanout/node-floor.mjs${withExpress ? ' --express' : ''} --workers ${workers}`,
  });
}

const SERVERS_KNOWN = ['lazy-content', 'lazy-content-no-digest', 'lazy-content-inline', 'varnish', 'squid', 'nginx', 'node-floor', 'node-floor-express', 'node-floor-2'];
const SERVERS = [
  { name: 'lazy-content', title: 'lazy-content, Express 5 (entry with digest)', kind: 'lazy', digest: true },
  { name: 'lazy-content-no-digest', title: 'lazy-content, Express 5 (entry without digest)', kind: 'lazy', digest: false },
  { name: 'lazy-content-inline', title: 'lazy-content, Express 5, streamer.inline (entry with digest)', kind: 'lazy', digest: true, inline: true },
  { name: 'varnish', title: 'Varnish (do_stream)', kind: 'proxy', config: varnish },
  { name: 'squid', title: 'Squid (collapsed_forwarding)', kind: 'proxy', config: squid },
  { name: 'nginx', title: 'nginx (proxy_cache_lock)', kind: 'proxy', config: nginx },
  { name: 'node-floor', title: 'Node floor: node:http, file in memory (no proxy)', kind: 'proxy', config: nodeFloor(false) },
  { name: 'node-floor-express', title: 'Node floor: Express 5, file in memory (no proxy)', kind: 'proxy', config: nodeFloor(true) },
  { name: 'node-floor-2', title: 'Node floor: node:http, 2 cluster workers, file in memory (no proxy)', kind: 'proxy', config: nodeFloor(false, 2) },
].filter((s) => (ONLY ? ONLY.has(s.name) : s.name !== 'lazy-content-no-digest' || NO_DIGEST));
if (ONLY) {
  const known = new Set(SERVERS_KNOWN);
  for (const name of ONLY) if (!known.has(name)) throw new Error(`BENCH_ONLY: unknown server ${name}`);
}

// ---------------------------------------------------------------------------------------------------------
// Processes: everything started here is remembered and killed whatever happens.

/** child → is it the leader of its own process group (detached)? */
const children = new Map();
let tmpRoot;

function kill(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    if (children.get(child)) process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    // already gone
  }
}

function cleanupSync() {
  for (const child of children.keys()) kill(child, 'SIGKILL');
  children.clear();
  if (tmpRoot) {
    rmSync(tmpRoot, { recursive: true, force: true });
    tmpRoot = undefined;
  }
}

process.on('exit', cleanupSync);
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(signal, () => {
    process.stderr.write(`\nfanout: ${signal}, stopping\n`);
    process.exit(code);
  });
}
/** Rows measured so far (printed if the run is cut short). */
const measured = [];
const deadline = setTimeout(() => {
  process.stderr.write(`\nfanout: the whole run took longer than BENCH_TIMEOUT=${TIMEOUT_S} s, stopping\n`);
  for (const size of new Set(measured.map((r) => r.size))) {
    const rows = measured.filter((r) => r.size === size);
    process.stdout.write(`\nMeasured before the time limit, ${size / MiB} MiB (incomplete):\n\n${table(rows, rows[0].floorS)}\n`);
  }
  process.exit(1);
}, TIMEOUT_S * 1000);
deadline.unref();

/** Spawns and tracks a process; `group`: in its own process group (servers), killed with the whole group. */
function start(command, args, { group = true, cwd, env } = {}) {
  const child = spawn(command, args, { cwd, env, detached: group, stdio: ['ignore', 'pipe', 'pipe'] });
  children.set(child, group);
  // Its output is kept (the end of it) to explain a failure.
  child.output = '';
  const keep = (chunk) => {
    child.output = (child.output + chunk.toString('utf8')).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => {
    child.once('error', (err) => {
      keep(`\n${err.message}\n`);
      children.delete(child);
      resolve({ code: null, signal: null, error: err });
    });
    child.once('exit', (code, signal) => {
      if (children.get(child)) {
        try {
          process.kill(-child.pid, 'SIGKILL'); // whatever it left in its group
        } catch {
          // empty group
        }
      }
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return child;
}

/** Stops a server: SIGTERM to its group, SIGKILL after STOP_TIMEOUT_MS. */
async function stop(child) {
  kill(child, 'SIGTERM');
  const timer = setTimeout(() => kill(child, 'SIGKILL'), STOP_TIMEOUT_MS);
  await child.exited;
  clearTimeout(timer);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    }),
  ]);
}

/** Resolves with the port once the child prints "ready <port>". */
function readyPort(child, what) {
  const ready = new Promise((resolve, reject) => {
    let seen = '';
    child.stdout.on('data', (chunk) => {
      seen += chunk.toString('utf8');
      const m = /^ready (\d+)$/m.exec(seen);
      if (m) resolve(Number(m[1]));
    });
    child.exited.then(({ code, signal }) => reject(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${child.output}`)));
  });
  return withTimeout(ready, START_TIMEOUT_MS, what);
}

/** One GET; resolves with status and body (small bodies only), rejects on a network error or after `ms`. */
function httpGet(port, pathname, ms = 2000) {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: pathname, agent: false, timeout: ms }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Waits until the server answers HTTP at all (any status), for at most START_TIMEOUT_MS. */
async function answersHttp(port, child, what) {
  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited before it answered:\n${child.output}`);
    try {
      await httpGet(port, '/fanout-ready-check', 1000);
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${what} did not answer HTTP within ${START_TIMEOUT_MS / 1000} s:\n${child.output}`);
      await sleep(100);
    }
  }
}

/** A free port on 127.0.0.1 for servers that cannot be told to take any (Varnish, Squid, nginx). */
async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// /proc: memory and CPU of a process tree, CPU of the machine.

function statFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces; f[0] is field 3 (state).
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** `pid` and every process below it. */
function processTree(pid) {
  const parentOf = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      parentOf.set(Number(name), Number(statFields(name)[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** Sum of VmHWM (KiB) over `pids`, and how many were read. */
function peakMemoryKiB(pids) {
  let sum = 0;
  let count = 0;
  for (const pid of pids) {
    try {
      const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) {
        sum += Number(m[1]);
        count++;
      }
    } catch {
      // gone meanwhile
    }
  }
  return { kib: sum, processes: count };
}

/** CPU ticks (user + system) used so far by `pids`, by pid. */
function cpuTicks(pids) {
  const ticks = new Map();
  for (const pid of pids) {
    try {
      const f = statFields(pid);
      ticks.set(pid, Number(f[11]) + Number(f[12]));
    } catch {
      // gone
    }
  }
  return ticks;
}

/**
 * CPU ticks of each thread of `pid`, by thread name (threads of one name summed), main thread as "main":
 * `{ all, system }` (user + system, and the system part alone: the kernel's work on its behalf, such as copying
 * the bytes of socket writes).
 */
function threadTicks(pid) {
  const ticks = new Map();
  let names;
  try {
    names = readdirSync(`/proc/${pid}/task`);
  } catch {
    return ticks;
  }
  for (const tid of names) {
    try {
      const f = statFields(`${pid}/task/${tid}`);
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const name = Number(tid) === pid ? 'main' : comm;
      const was = ticks.get(name) ?? { all: 0, system: 0 };
      ticks.set(name, { all: was.all + Number(f[11]) + Number(f[12]), system: was.system + Number(f[12]) });
    } catch {
      // gone
    }
  }
  return ticks;
}

/**
 * CPU ticks of every process that is not ours (not this process or below it) and not a kernel thread (those
 * below kthreadd, such as ksoftirqd, work for our own traffic too): the other jobs on the machine.
 */
function othersTicks() {
  const info = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const f = statFields(name);
      // With its reaped children's time (cutime, cstime): a job that ends during the run still shows.
      info.set(Number(name), { parent: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
    } catch {
      // gone meanwhile
    }
  }
  const isOurs = (pid) => {
    for (let p = pid, depth = 0; p > 0 && depth < 64; p = info.get(p)?.parent ?? 0, depth++) {
      if (p === process.pid || p === 2) return true;
    }
    return false;
  };
  const ticks = new Map();
  for (const [pid, { ticks: t }] of info) if (pid !== 2 && !isOurs(pid)) ticks.set(pid, t);
  return ticks;
}

/** Ticks other processes used since `before` (processes that started and ended in between are missed). */
function othersSince(before) {
  let sum = 0;
  for (const [pid, t] of othersTicks()) sum += t - (before.get(pid) ?? 0);
  return sum;
}

/** Busy and total jiffies of the whole machine. */
function machineTimes() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  return { busy: f.slice(0, 8).reduce((a, b) => a + b, 0) - idle, total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** CPUs in use on the whole machine over `ms` (call while our own processes are idle). */
async function machineLoad(ms = 1000) {
  const a = machineTimes();
  await sleep(ms);
  const b = machineTimes();
  return b.total === a.total ? 0 : ((b.busy - a.busy) / (b.total - a.total)) * os.cpus().length;
}

async function waitQuiet() {
  const until = Date.now() + QUIET_WAIT_S * 1000;
  let load = await machineLoad();
  let told = false;
  while (load > QUIET_CPUS && Date.now() < until) {
    if (!told) process.stdout.write(`  (other processes use ${load.toFixed(2)} CPU: waiting up to ${QUIET_WAIT_S} s for quiet)\n`);
    told = true;
    load = await machineLoad();
  }
  if (load > QUIET_CPUS) process.stdout.write(`  WARNING: other processes still use ${load.toFixed(2)} CPU: this run is disturbed\n`);
  return load;
}

// ---------------------------------------------------------------------------------------------------------
// Clients.

/** The environment of curl: no proxy settings from ours. */
const curlEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k)));
const WRITE_OUT = '%{time_starttransfer} %{time_total} %{size_download} %{http_code} %{num_redirects} %{time_redirect} %{time_connect} %{time_pretransfer}';

/**
 * One curl download, spawned now but held at the gate: curl reads its URL from its standard input
 * (`--config -`) and does nothing until that is closed. `go()` releases it; the returned promise resolves
 * when it exited, with its figures and when it was released and ended (performance.now ms). Spawning 50
 * processes takes long enough (seconds, on a busy machine) that the first ones would be half-way through
 * the file before the last one starts; the gate makes them start within a few milliseconds of each other.
 */
function gatedClient(url, maxTimeS) {
  const args = ['-sS', '-L', '--noproxy', '*', '-o', '/dev/null', '--max-time', String(maxTimeS), '-w', WRITE_OUT, '--config', '-'];
  const child =
    CLIENT_NICE === 0
      ? spawn('curl', args, { env: curlEnv, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn('nice', ['-n', String(CLIENT_NICE), 'curl', ...args], { env: curlEnv, stdio: ['pipe', 'pipe', 'pipe'] });
  children.set(child, false);
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c.toString('utf8')));
  child.stderr.on('data', (c) => (err = (err + c.toString('utf8')).slice(-2000)));
  child.stdin.on('error', () => undefined);
  let startedAt;
  let endedAt;
  let spawnError;
  child.once('error', (e) => (spawnError = e));
  child.once('exit', () => {
    endedAt = performance.now();
    children.delete(child);
  });
  const done = new Promise((resolve) => {
    child.once('close', (code, signal) => {
      const [ttfb, total, bytes, status, redirects, redirectTime, connect, pretransfer] = out.trim().split(' ');
      resolve({
        startedAt: startedAt ?? performance.now(),
        endedAt: endedAt ?? performance.now(),
        exit: code ?? signal,
        ttfb: Number(ttfb),
        total: Number(total),
        bytes: Number(bytes),
        status: Number(status),
        redirects: Number(redirects),
        redirectTime: Number(redirectTime),
        connect: Number(connect),
        pretransfer: Number(pretransfer),
        stderr: (spawnError ? `${spawnError.message} ` : '') + err.trim(),
      });
    });
  });
  return {
    pid: child.pid,
    go: () => {
      startedAt = performance.now();
      child.stdin.end(`url = "${url}"\n`);
    },
    done,
  };
}

/** Waits until every pid runs curl (exec done) and is asleep (waiting on its standard input), at most 10 s. */
async function waitExecuted(pids) {
  const until = Date.now() + 10_000;
  for (;;) {
    const waiting = pids.filter((pid) => {
      try {
        const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        return comm !== 'curl' || statFields(pid)[0] !== 'S';
      } catch {
        return false; // exited already: its result will say why
      }
    });
    if (waiting.length === 0 || Date.now() > until) return;
    await sleep(20);
  }
}

/** One ungated curl download (the floor). */
async function client(url, maxTimeS) {
  const c = gatedClient(url, maxTimeS);
  c.go();
  return c.done;
}

// ---------------------------------------------------------------------------------------------------------
// Servers.

async function startServer(server, { dir, originPort, size, digest }) {
  mkdirSync(dir, { recursive: true });
  if (server.kind === 'lazy') {
    const script = process.env.BENCH_LAZY_SCRIPT ? path.resolve(process.env.BENCH_LAZY_SCRIPT) : path.join(here, 'fanout', 'lazy-express.mjs');
    const args = [...LAZY_NODE_ARGS, script, '--data-dir', path.join(dir, 'data')];
    args.push('--origin-port', String(originPort), '--size', String(size));
    if (server.digest) args.push('--digest', digest);
    if (server.inline) args.push('--inline');
    args.push('--acceptors', String(ACCEPTORS));
    if (TRACE_DIR) {
      mkdirSync(TRACE_DIR, { recursive: true });
      args.push('--trace', traceFile(server, size));
    }
    if (WARMUP) args.push('--warm-size', String(WARM_SIZE));
    const child = start(process.execPath, args, { cwd: dir });
    const port = await readyPort(child, server.name);
    await answersHttp(port, child, server.name);
    return {
      child,
      port,
      url: `http://127.0.0.1:${port}/content/bench/file-${size}.bin`,
      warmUrl: `http://127.0.0.1:${port}/content/bench/file-${WARM_SIZE}.bin`,
    };
  }
  const port = await freePort();
  const config = server.config({ dir, port, originPort });
  for (const [name, text] of Object.entries(config.files)) writeFileSync(path.join(dir, name), text);
  config.prepare?.();
  const child = start(config.command, config.args, { cwd: dir });
  await answersHttp(port, child, server.name);
  return { child, port, url: `http://127.0.0.1:${port}${filePath(size)}`, warmUrl: `http://127.0.0.1:${port}${filePath(WARM_SIZE)}` };
}

async function originCount(originPort, size) {
  const { status, body } = await httpGet(originPort, `/_count?path=${encodeURIComponent(filePath(size))}`);
  if (status !== 200) throw new Error(`origin /_count answered ${status}`);
  return JSON.parse(body);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};
/** Nearest-rank percentile. */
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
};

async function run(server, ctx) {
  const { size, originPort } = ctx;
  const dir = path.join(tmpRoot, `${server.name}-${size}`);
  const load = await waitQuiet();
  const srv = await startServer(server, { ...ctx, dir });
  try {
    if (WARMUP) {
      // A running proxy, not a process that just started: one other file through the same path first (for
      // lazy-content: the 302, the streamer, a fill, the undici client and the JIT; for the others, their
      // backend connection and cache code).
      // The same shape of load as the measured run (CLIENTS at once), on a small file, twice: once while it is
      // fetched, once from the cache. Code that runs once is not compiled yet (V8 optimises what runs often).
      for (let round = 0; round < 2; round++) {
        const warm = await Promise.all(Array.from({ length: CLIENTS }, () => client(srv.warmUrl, 60)));
        const bad = warm.find((w) => w.exit !== 0 || w.status !== 200 || w.bytes !== WARM_SIZE);
        if (bad) throw new Error(`${server.name}: warm-up download failed (exit ${bad.exit}, status ${bad.status}, ${bad.bytes} bytes)`);
      }
    }
    const before = await originCount(originPort, size);
    // Each client's bound (curl --max-time): generous, because 50 clients and the server share the machine's
    // CPUs and the slowest server needs several times the origin's transfer time; a client cut by it shows
    // as a failed download (curl exit 28).
    const maxTimeS = Math.ceil((size / RATE) * 10 + 60);
    const gated = [];
    for (let i = 0; i < CLIENTS; i++) gated.push(gatedClient(srv.url, maxTimeS));
    await waitExecuted(gated.map((c) => c.pid).filter(Boolean));
    await sleep(200);
    const tree0 = processTree(srv.child.pid);
    const ticks0 = cpuTicks(tree0);
    const machine0 = machineTimes();
    const threads0 = threadTicks(srv.child.pid);
    const others0 = othersTicks();
    const monoFrom = process.hrtime.bigint() / 1000n;
    for (const c of gated) c.go();
    const results = await withTimeout(Promise.all(gated.map((c) => c.done)), (maxTimeS + 30) * 1000, `${server.name}: clients`);
    const monoTo = process.hrtime.bigint() / 1000n;
    const machine1 = machineTimes();
    const threads1 = threadTicks(srv.child.pid);
    const wallS = Number(monoTo - monoFrom) / 1e6;
    const threads = [...threads1]
      .map(([name, t]) => {
        const was = threads0.get(name) ?? { all: 0, system: 0 };
        return { name, cpuS: (t.all - was.all) / CLK_TCK, systemS: (t.system - was.system) / CLK_TCK };
      })
      .filter((t) => t.cpuS > 0)
      .sort((a, b) => b.cpuS - a.cpuS)
      .map((t) => ({ ...t, ofWall: t.cpuS / wallS }));
    const tree = server.kind === 'lazy' ? [srv.child.pid] : processTree(srv.child.pid);
    const ticks1 = cpuTicks(tree);
    const memory = peakMemoryKiB(tree);
    let ticks = 0;
    for (const [pid, t] of ticks1) ticks += t - (ticks0.get(pid) ?? 0);
    // Everything else the machine did meanwhile (other jobs), in CPUs: busy time less the server, the clients,
    // the origin and this process. Jiffies of /proc/stat and ticks of /proc/<pid>/stat are both 1/100 s.
    const othersCpus = othersSince(others0) / CLK_TCK / (Number(monoTo - monoFrom) / 1e6);
    const after = await originCount(originPort, size);
    const ok = results.filter((r) => r.exit === 0 && r.status === 200 && r.bytes === size);
    const failed = results.filter((r) => !ok.includes(r));
    const wall = (Math.max(...results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt))) / 1000;
    const spawnSpread = (Math.max(...results.map((r) => r.startedAt)) - Math.min(...results.map((r) => r.startedAt))) / 1000;
    return {
      server: server.name,
      title: server.title,
      size,
      clients: CLIENTS,
      complete: ok.length,
      failed: failed.map((r) => ({ exit: r.exit, status: r.status, bytes: r.bytes, stderr: r.stderr.slice(0, 300) })),
      upstreamFetches: after.requests - before.requests,
      upstreamCompleted: after.completed - before.completed,
      upstreamBytes: after.bytesSent - before.bytesSent,
      wallS: wall,
      releaseSpreadS: spawnSpread,
      ttfbMedianS: median(ok.map((r) => r.ttfb)),
      ttfbP99S: percentile(ok.map((r) => r.ttfb), 99),
      ttfbMinS: Math.min(...ok.map((r) => r.ttfb)),
      totalMedianS: median(ok.map((r) => r.total)),
      totalMaxS: Math.max(...ok.map((r) => r.total)),
      peakMemoryKiB: memory.kib,
      processes: memory.processes,
      serverCpuS: ticks / CLK_TCK,
      machineBusy: (machine1.busy - machine0.busy) / (machine1.total - machine0.total),
      loadBefore: load,
      /** CPUs used by other processes on the machine during the clients' run (0 = undisturbed; short-lived ones are missed). */
      othersDuring: othersCpus,
      redirects: median(results.map((r) => r.redirects)),
      /** curl's %{time_redirect}: the part of TTFB spent on the 302 (lazy-content's content side). */
      redirectMedianS: median(ok.map((r) => r.redirectTime)),
      redirectP99S: percentile(ok.map((r) => r.redirectTime), 99),
      /** Every client: TTFB, time of the 302, total (s), exit code, status, bytes. */
      perClient: results.map((r) => ({ ttfb: r.ttfb, connect: r.connect, pretransfer: r.pretransfer, redirect: r.redirectTime, total: r.total, exit: r.exit, status: r.status, bytes: r.bytes })),
      /** CPU of the server's first process by thread (lazy-content: "main" is the JavaScript thread). */
      threads,
      /** The clients' run in CLOCK_MONOTONIC µs, the clock of a .cpuprofile (bench/fanout/cpu-profile.mjs --window). */
      window: `${monoFrom},${monoTo}`,
    };
  } finally {
    await stop(srv.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Output.

const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const mib = (bytes) => (bytes / MiB).toFixed(1);

function table(rows, floorS) {
  const lines = [
    '| server | upstream fetches | upstream MiB sent | complete downloads | wall s | TTFB median s | TTFB p99 s | peak memory MiB (processes) | server CPU s | machine CPU busy |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.title} | ${r.upstreamFetches} | ${mib(r.upstreamBytes)} | ${r.complete}/${r.clients} | ${f3(r.wallS)} | ${f3(r.ttfbMedianS)} | ${f3(r.ttfbP99S)} | ${mib(r.peakMemoryKiB * 1024)} (${r.processes}) | ${r.serverCpuS.toFixed(2)} | ${(r.machineBusy * 100).toFixed(0)} % |`,
    );
  }
  const notes = [`Floor: the origin alone sends one file to one curl client in ${f3(floorS)} s.`];
  for (const r of rows) {
    if (r.failed.length > 0) {
      notes.push(`FAILED (${r.title}): ${r.failed.length} of ${r.clients} downloads:`);
      for (const f of r.failed.slice(0, 5)) notes.push(`  exit ${f.exit}, HTTP ${f.status}, ${f.bytes} bytes ${f.stderr ? `— ${f.stderr}` : ''}`);
    }
    if (r.loadBefore > QUIET_CPUS) notes.push(`(${r.title}: other processes used ${r.loadBefore.toFixed(2)} CPU just before this run)`);
    if (r.othersDuring > QUIET_CPUS) notes.push(`(${r.title}: DISTURBED: other processes used ${r.othersDuring.toFixed(2)} CPU on average during this run)`);
  }
  return `${lines.join('\n')}\n\n${notes.join('\n')}`;
}

function goals(all) {
  const out = [];
  for (const lazyName of ['lazy-content', 'lazy-content-no-digest', 'lazy-content-inline']) {
    const lazyRows = all.filter((r) => r.server === lazyName);
    if (lazyRows.length === 0) continue;
    out.push(`Goals for ${lazyRows[0].title}:`);
    for (const r of lazyRows) {
      const v = all.find((x) => x.server === 'varnish' && x.size === r.size);
      const label = `${r.size / MiB} MiB`;
      out.push(`  ${label}: 1 upstream fetch: ${r.upstreamFetches === 1 ? 'met' : 'NOT met'} (${r.upstreamFetches})`);
      if (v) {
        const t = r.ttfbMedianS / v.ttfbMedianS;
        const w = r.wallS / v.wallS;
        out.push(`  ${label}: median TTFB ≤ 2× Varnish's: ${t <= 2 ? 'met' : 'NOT met'} (${f3(r.ttfbMedianS)} s vs ${f3(v.ttfbMedianS)} s, ${t.toFixed(2)}×)`);
        out.push(`  ${label}: wall ≤ 1.2× Varnish's: ${w <= 1.2 ? 'met' : 'NOT met'} (${f3(r.wallS)} s vs ${f3(v.wallS)} s, ${w.toFixed(3)}×)`);
      }
      if (r.complete !== r.clients) out.push(`  ${label}: ${r.clients - r.complete} downloads FAILED`);
    }
    if (lazyRows.length > 1) {
      const sorted = [...lazyRows].sort((a, b) => a.size - b.size);
      const small = sorted[0];
      const large = sorted[sorted.length - 1];
      const grew = (large.peakMemoryKiB - small.peakMemoryKiB) / 1024;
      out.push(
        `  peak memory vs file size: ${mib(small.peakMemoryKiB * 1024)} MiB at ${small.size / MiB} MiB, ${mib(large.peakMemoryKiB * 1024)} MiB at ${large.size / MiB} MiB (${grew >= 0 ? '+' : ''}${grew.toFixed(1)} MiB for ${(large.size - small.size) / MiB} MiB more file)`,
      );
    }
  }
  return out.join('\n');
}

async function versions() {
  const grab = (cmd, args) =>
    new Promise((resolve) => {
      const c = start(cmd, args, { group: false });
      c.exited.then(() => resolve(c.output.split('\n').find((l) => l.trim()) ?? '?'));
    });
  const { VARNISHD, SQUID, NGINX } = await import('./fanout/proxies.mjs');
  return {
    varnish: await grab(VARNISHD, ['-V']),
    squid: await grab(SQUID, ['-v']),
    nginx: await grab(NGINX, ['-v']),
    curl: await grab('curl', ['--version']),
  };
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  tmpRoot = mkdtempSync(path.join(os.tmpdir(), 'lazy-content-fanout-'));
  // Squid's worker runs as another user and must reach its folder below this one.
  chmodSync(tmpRoot, 0o755);
  const v = await versions();
  const cpuModel = os.cpus()[0]?.model ?? '?';
  process.stdout.write(
    `Fan-out: ${CLIENTS} concurrent curl clients, origin limited to ${RATE_MIB} MiB/s per connection, sizes ${SIZES_MIB.map((s) => `${s} MiB`).join(', ')}\n` +
      `Machine: ${os.cpus().length} CPUs (${cpuModel}), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, Linux ${os.release()}, Node ${process.version}\n` +
      `  ${v.varnish}\n  ${v.squid}\n  ${v.nginx}\n  ${v.curl}\n` +
      `lazy-content rows: catalog entry with size; "with digest" = SHA-256 given, the last 64 KiB held back until verified.\n`,
  );
  if (LAZY_NODE_ARGS.length) process.stdout.write(`lazy-content child runs with: node ${LAZY_NODE_ARGS.join(' ')}\n`);

  const origin = start(process.execPath, [path.join(here, 'fanout', 'origin.mjs'), '--rate', String(RATE)]);
  const originPort = await readyPort(origin, 'origin');

  const all = [];
  const tables = [];
  for (const sizeMib of SIZES_MIB) {
    const size = sizeMib * MiB;
    const t = performance.now();
    const digest = sha256Of(size);
    process.stdout.write(`\n## ${sizeMib} MiB (sha256 ${digest.slice(0, 16)}…, computed in ${((performance.now() - t) / 1000).toFixed(2)} s)\n`);
    const floor = await client(`http://127.0.0.1:${originPort}${filePath(size)}`, Math.ceil((size / RATE) * 4 + 30));
    if (floor.exit !== 0 || floor.bytes !== size) throw new Error(`the origin alone failed: exit ${floor.exit}, ${floor.bytes} bytes: ${floor.stderr}`);
    process.stdout.write(`  origin alone, one client: ${f3(floor.total)} s (${sizeMib} MiB at ${RATE_MIB} MiB/s = ${f3(size / RATE)} s)\n`);
    const rows = [];
    for (const server of SERVERS) {
      const describe = (row) =>
        `${row.upstreamFetches} fetch(es), ${row.complete}/${row.clients} complete, wall ${f3(row.wallS)} s, TTFB median ${f3(row.ttfbMedianS)} s / p99 ${f3(row.ttfbP99S)} s, ` +
        `peak ${mib(row.peakMemoryKiB * 1024)} MiB, server CPU ${row.serverCpuS.toFixed(2)} s, other processes ${row.othersDuring.toFixed(2)} CPU (clients released within ${f3(row.releaseSpreadS)} s)\n`;
      process.stdout.write(`  ${server.name}… `);
      let row = await run(server, { size, originPort, digest });
      process.stdout.write(describe(row));
      for (let attempt = 1; attempt <= RETRIES && row.othersDuring > DISTURBED_CPUS; attempt++) {
        process.stdout.write(`  ${server.name} again (the run above was disturbed)… `);
        const again = await run(server, { size, originPort, digest });
        process.stdout.write(describe(again));
        if (again.othersDuring < row.othersDuring) row = again;
        process.stdout.write(`    kept the attempt with ${row.othersDuring.toFixed(2)} CPU of other processes\n`);
      }
      row.floorS = floor.total;
      rows.push(row);
      all.push(row);
      measured.push(row);
      if (server.kind === 'lazy') {
        const t = row.threads.map((x) => `${x.name} ${x.cpuS.toFixed(2)} s (${(x.ofWall * 100).toFixed(0)} %; kernel ${x.systemS.toFixed(2)} s)`).join(', ');
        process.stdout.write(`    CPU by thread of the Node process during the run (% of wall; of which in the kernel): ${t}\n`);
        if (!server.inline) process.stdout.write(`    of the TTFB, the 302 took: median ${f3(row.redirectMedianS)} s, p99 ${f3(row.redirectP99S)} s\n`);
      }
      if (server.kind === 'lazy' && TRACE_DIR) {
        // Of the last attempt, when a disturbed run was done again.
        const { summary } = JSON.parse(readFileSync(traceFile(server, size), 'utf8'));
        process.stdout.write(`    trace (ms from the first request; ${traceFile(server, size)}): ${JSON.stringify(summary)}\n`);
      }
      if (server.kind === 'lazy' && LAZY_NODE_ARGS.includes('--cpu-prof')) {
        process.stdout.write(`    profile window: node bench/fanout/cpu-profile.mjs <file>.cpuprofile --window ${row.window}\n`);
      }
    }
    const text = `### ${sizeMib} MiB, ${CLIENTS} clients\n\n${table(rows, floor.total)}`;
    tables.push(text);
    process.stdout.write(`\n${text}\n`);
  }
  const g = goals(all);
  if (g) process.stdout.write(`\n${g}\n`);
  if (process.env.BENCH_JSON) writeFileSync(process.env.BENCH_JSON, `${JSON.stringify({ clients: CLIENTS, rateMiB: RATE_MIB, versions: v, results: all }, null, 2)}\n`);
  await stop(origin);
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`fanout: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
