// Entitlement benchmark (issue 6): requests per second for a saved 4 KiB file when a v3 Red Hat entitlement
// certificate is required, against the same server with protection off. Goal: on/off ≥ 0.9.
//
//   npx tsc -b && node bench/entitlement.mjs
//
// Two ways the certificate reaches the server (bench/servers/express-entitled.mjs: Express 5 +
// @lazy-content/express, rule { prefix: '/', ca: katello-default-ca.crt, policy: 'rhsm' }, trustedProxies
// ['127.0.0.1']; protection off = no `entitlement` option):
//   proxy header  plain HTTP, as behind a TLS-terminating proxy: wrk -t1 -c50 -d10s with
//                 -H 'x-client-cert: <URL-encoded PEM of rhsm/v3/5527980418107729172.pem>' (also when off)
//   TLS socket    the server speaks HTTPS itself (requestCert: true, rejectUnauthorized: false, a throwaway
//                 server certificate made with openssl); wrk cannot present a client certificate, so the load
//                 comes from bench/entitlement/https-load.mjs (its own process: 50 request loops on a
//                 keep-alive https.Agent with the v3 certificate and key). That generator is Node too, and
//                 shares the 2 CPUs with the server: its req/s are not comparable with wrk's, only on/off is.
//
// Environment (the knobs of bench/serve.mjs, whose helpers this uses):
//   BENCH_SECONDS=10  BENCH_WARMUP=2
//   BENCH_ROUNDS=1           rounds; in each, every mode is measured off and on (off first in odd rounds, on
//                            first in even ones). The table shows the median req/s of each, and as on/off the
//                            median of the rounds' own on/off ratios
//   BENCH_QUIET_WAIT=60  BENCH_RETRIES=2   wait for a quiet machine; measure again a disturbed run
//   BENCH_MODES=header,tls   which ways to measure
//   BENCH_JSON=file          also write the results as JSON
//   BENCH_PROFILE_DIR=dir    run the protected servers under `node --cpu-prof`, profiles into dir/<mode>/
//                            (figures of such a run are not representative; read the profiles with
//                            node bench/fanout/cpu-profile.mjs or Chrome DevTools)
//
// Every response under load must be 200 with the file's 4096 bytes: one 403 means the setup is wrong, and the
// benchmark stops. Before the load, one request per server checks status and bytes, and with protection on
// that a request without a certificate is refused (403), so that "on" really is protected.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CONNECTIONS,
  fmtInt,
  fmtRatio,
  machine,
  measureQuietly,
  median,
  processTicks,
  QUIET_WAIT,
  RETRIES,
  ROUNDS,
  runMain,
  runReporting,
  runWrk,
  SECONDS,
  sleep,
  startServer,
  stopServer,
  WARMUP,
  withTimeout,
  wrkArgs,
} from './serve.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..');
const FIXTURES = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'entitlement');
const CERT = 'rhsm/v3/5527980418107729172.pem';
const KEY = 'rhsm/v3/5527980418107729172-key.pem';
const HEADER = 'x-client-cert';
const FILE_PATH = 'Default_Organization/Library/content/dist/rhel8/8/x86_64/baseos/os/repodata/repomd.xml';
const FILE_SIZE = 4096;
const GOAL = 0.9;
const LOAD = path.join(here, 'entitlement', 'https-load.mjs');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).stdout) || 100;

const MODES = [
  { name: 'header', title: 'proxy header (HTTP, wrk)' },
  { name: 'tls', title: 'TLS socket (HTTPS, Node generator)' },
];

let tmp;
process.on('exit', () => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------

function setUp() {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'lazy-content-bench-entitlement-'));
  const root = path.join(tmp, 'files');
  const file = path.join(root, FILE_PATH);
  mkdirSync(path.dirname(file), { recursive: true });
  const bytes = randomBytes(FILE_SIZE);
  writeFileSync(file, bytes);
  // A throwaway server certificate for 127.0.0.1.
  const tls = path.join(tmp, 'tls');
  mkdirSync(tls);
  const cert = path.join(tls, 'server.crt');
  const key = path.join(tls, 'server.key');
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { encoding: 'utf8', timeout: 30_000 },
  );
  if (made.status !== 0) throw new Error(`openssl could not make the server certificate: ${made.error?.message ?? made.stderr}`);
  return { root, digest: createHash('sha256').update(bytes).digest('hex'), tls: { cert, key } };
}

/** One GET outside the load: status, and the body's length and SHA-256. */
function getOnce(url, { headers = {}, cert, key } = {}) {
  const lib = url.startsWith('https:') ? https : http;
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = lib.request(url, { agent: false, headers, cert, key, rejectUnauthorized: false }, (res) => {
        const hash = createHash('sha256');
        let size = 0;
        res.on('data', (c) => {
          size += c.length;
          hash.update(c);
        });
        res.on('end', () => resolve({ status: res.statusCode, size, digest: hash.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    }),
    30_000,
    `GET ${url}`,
  );
}

/** The node load generator, in its own process; resolves to its report with req/s. */
async function runHttpsLoad(seconds, url, identity) {
  const args = [LOAD, '--url', url, '--cert', identity.cert, '--key', identity.key, '--connections', String(CONNECTIONS), '--seconds', String(seconds), '--size', String(FILE_SIZE)];
  const { report } = await runReporting(process.execPath, args, { marker: 'HTTPS_LOAD', what: 'https-load', timeoutMs: (seconds + 40) * 1000 });
  return report;
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const modes = (process.env.BENCH_MODES ?? 'header,tls').split(',').map((s) => s.trim());
  for (const m of modes) if (!MODES.some((x) => x.name === m)) throw new Error(`BENCH_MODES: unknown mode ${m} (header, tls)`);
  const chosen = MODES.filter((m) => modes.includes(m.name));
  const profileDir = process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : null;

  if (spawnSync('wrk', ['-v'], { timeout: 5000 }).error) throw new Error('wrk is missing: apt-get install -y wrk');
  if (spawnSync('openssl', ['version'], { timeout: 5000 }).error) throw new Error('openssl is missing');
  for (const f of [CERT, KEY, 'rhsm/katello-default-ca.crt']) readFileSync(path.join(FIXTURES, f)); // fails loudly when missing

  const runs = ROUNDS * chosen.length * 2;
  const budgetS = runs * (2 * WARMUP + (RETRIES + 1) * (SECONDS + QUIET_WAIT + 45) + 60) + 60;
  const watchdog = setTimeout(() => {
    process.stderr.write(`entitlement: time budget of ${budgetS} s exceeded, stopping\n`);
    process.exit(1); // serve.mjs's exit handler kills every child
  }, budgetS * 1000);
  watchdog.unref();

  const identity = { cert: path.join(FIXTURES, CERT), key: path.join(FIXTURES, KEY) };
  const escaped = encodeURIComponent(readFileSync(identity.cert, 'utf8'));
  const headerArgs = ['-H', `${HEADER}: ${escaped}`];

  const m = machine();
  const rel = (p) => path.relative(process.cwd(), p) || '.';
  const wrkShown = `wrk ${wrkArgs(SECONDS, `http://127.0.0.1:PORT/content/${FILE_PATH}`, ['-H', `'${HEADER}: <URL-encoded PEM of ${CERT}, ${escaped.length} chars>'`]).join(' ')}`.replace(
    path.join(here, 'wrk-report.lua'),
    rel(path.join(here, 'wrk-report.lua')),
  );
  const loadShown = `node ${rel(LOAD)} --url https://127.0.0.1:PORT/content/${FILE_PATH} --cert ${path.relative(repoRoot, identity.cert)} --key ${path.relative(repoRoot, identity.key)} --connections ${CONNECTIONS} --seconds ${SECONDS} --size ${FILE_SIZE}`;
  const serverShown = `node ${rel(path.join(here, 'servers', 'express-entitled.mjs'))} --port 0 --host 127.0.0.1 --root DIR --protect off|on [--tls-cert server.crt --tls-key server.key]`;
  console.log(
    [
      `machine: ${m.nproc} CPUs (nproc), ${m.cpu}, ${m.memoryGiB} GiB, ${m.kernel}`,
      `node ${m.node}, ${m.wrk}, ${spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: 5000 }).stdout.trim()}; lazy-content at ${m.commit} (packages as built in dist/)`,
      `server:  ${serverShown}`,
      `header:  ${wrkShown}`,
      `tls:     ${loadShown}`,
      `file: ${FILE_SIZE} B of random bytes at /content/${FILE_PATH}; fixtures: ${path.relative(repoRoot, FIXTURES)}`,
      `each server alone in its own process on 127.0.0.1; ${WARMUP} s warm-up (same load), then ${SECONDS} s measured; ${ROUNDS} round(s), off and on per mode (on first in even rounds)`,
    ].join('\n'),
  );
  if (profileDir) console.log(`PROFILING: protected servers run under --cpu-prof (profiles in ${profileDir}); these figures are not representative`);
  console.log('');

  const { root, digest, tls } = setUp();
  const results = []; // { mode, protect, round, run }
  for (let round = 1; round <= ROUNDS; round++) {
    if (ROUNDS > 1) console.log(`round ${round} of ${ROUNDS}`);
    for (const mode of chosen) {
      // Off then on in odd rounds, on then off in even ones: a slow drift of the machine does not favour either.
      for (const protect of round % 2 ? ['off', 'on'] : ['on', 'off']) {
        const label = `${mode.name} ${protect}`;
        process.stdout.write(`${label}: starting… `);
        const args = ['--protect', protect, ...(mode.name === 'tls' ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [])];
        const nodeArgs = profileDir && protect === 'on' ? ['--cpu-prof', `--cpu-prof-dir=${path.join(profileDir, mode.name)}`] : [];
        const { child, port } = await startServer({ name: 'express-entitled', args, nodeArgs }, root);
        try {
          const url = `${mode.name === 'tls' ? 'https' : 'http'}://127.0.0.1:${port}/content/${FILE_PATH}`;
          const withCert = mode.name === 'tls' ? { cert: readFileSync(identity.cert), key: readFileSync(identity.key) } : { headers: { [HEADER]: escaped } };
          const got = await getOnce(url, withCert);
          if (got.status !== 200) throw new Error(`${label}: GET with the v3 certificate answered ${got.status}, expected 200: the setup is wrong`);
          if (got.size !== FILE_SIZE || got.digest !== digest) throw new Error(`${label}: GET answered ${got.size} bytes that are not the file`);
          const bare = await getOnce(url);
          const expected = protect === 'on' ? 403 : 200;
          if (bare.status !== expected) throw new Error(`${label}: GET without a certificate answered ${bare.status}, expected ${expected}`);
          process.stdout.write(`port ${port}, responses verified (without a certificate: ${bare.status})\n`);

          const load = mode.name === 'header' ? (s) => runWrk(s, url, headerArgs) : (s) => runHttpsLoad(s, url, identity);
          if (WARMUP > 0) check(label, await load(WARMUP));
          // The server's own CPU time per request: a second view of the cost, less sensitive to how the two CPUs
          // were shared between the server and the load generator.
          const timed = async () => {
            const before = processTicks(child.pid);
            const r = await load(SECONDS);
            const after = processTicks(child.pid);
            const served = r.ok ?? r.requests;
            r.serverCpuSeconds = before === null || after === null ? null : (after - before) / CLK_TCK;
            r.serverCpuUsPerRequest = r.serverCpuSeconds === null || served === 0 ? null : (r.serverCpuSeconds * 1e6) / served;
            return r;
          };
          const run = await measureQuietly({
            groupId: child.pid,
            run: timed,
            check: (r) => {
              if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${label}: the server died during the run`);
              check(label, r);
            },
            describe: (r) =>
              `  ${fmtInt(r.reqPerSec).padStart(8)} req/s  ${describeRun(r)}` +
              (r.serverCpuUsPerRequest === null ? '' : `  server CPU ${r.serverCpuSeconds.toFixed(2)} s = ${r.serverCpuUsPerRequest.toFixed(0)} µs/request`),
          });
          results.push({ mode: mode.name, protect, round, run });
        } finally {
          await stopServer(child);
        }
        await sleep(500);
      }
    }
  }

  const rows = chosen.map((mode) => {
    const pick = (protect) =>
      results
        .filter((r) => r.mode === mode.name && r.protect === protect)
        .sort((a, b) => a.round - b.round)
        .map((r) => r.run.reqPerSec);
    const off = median(pick('off'));
    const on = median(pick('on'));
    // Each round's on and off were measured minutes apart at most: their ratio is the paired comparison.
    const perRound = pick('on').map((x, i) => x / pick('off')[i]);
    const cpu = (protect) => {
      const xs = results.filter((r) => r.mode === mode.name && r.protect === protect).map((r) => r.run.serverCpuUsPerRequest);
      return xs.includes(null) ? null : median(xs);
    };
    return {
      mode: mode.name,
      title: mode.title,
      off,
      on,
      ratio: median(perRound),
      perRound,
      cpuOff: cpu('off'),
      cpuOn: cpu('on'),
    };
  });
  console.log('');
  if (ROUNDS > 1) {
    console.log(`median of ${ROUNDS} rounds; on/off is the median of the rounds' own on/off ratios:`);
    for (const r of rows) console.log(`  ${r.mode} on/off per round: ${r.perRound.map((x) => x.toFixed(2)).join(', ')}`);
  }
  console.log(table(rows));
  console.log('');
  if (rows.every((r) => r.cpuOff !== null && r.cpuOn !== null)) {
    console.log('server CPU time per request (utime + stime of the server process over the measurement / requests):');
    for (const r of rows) {
      console.log(`  ${r.title.padEnd(36)} off ${r.cpuOff.toFixed(0)} µs, on ${r.cpuOn.toFixed(0)} µs: ${r.cpuOn >= r.cpuOff ? '+' : '−'}${Math.abs(r.cpuOn - r.cpuOff).toFixed(0)} µs (off/on ${fmtRatio(r.cpuOff / r.cpuOn)})`);
    }
    console.log('');
  }
  console.log(`goal (issue 6): on/off ≥ ${GOAL}× req/s`);
  for (const r of rows) console.log(`  ${r.title.padEnd(36)} ${fmtRatio(r.ratio)} ${r.ratio >= GOAL ? 'met' : 'NOT met'}`);
  if (rows.some((r) => r.mode === 'tls')) {
    console.log('  (TLS socket: the load generator is a Node process on the same 2 CPUs, half of the bottleneck: only the ratio counts)');
  }

  if (process.env.BENCH_JSON) {
    const strip = ({ text: _text, ...rest }) => rest;
    writeFileSync(
      process.env.BENCH_JSON,
      `${JSON.stringify({ machine: m, seconds: SECONDS, warmup: WARMUP, rounds: ROUNDS, wrk: wrkShown, load: loadShown, rows, runs: results.map((r) => ({ ...r, run: strip(r.run) })) }, null, 2)}\n`,
    );
  }
}

/** Under load: every response 200 with the file's bytes, else the benchmark stops. */
function check(label, r) {
  if ('status_errors' in r) {
    // wrk: non-2xx/3xx responses are status errors; each 200 carries the 4096 bytes of the file plus headers.
    if (r.status_errors !== 0) throw new Error(`${label}: ${r.status_errors} of ${r.requests} responses were not 2xx/3xx under load (403: the certificate was refused, the setup is wrong):\n${r.text}`);
    if (r.socketErrors !== 0) throw new Error(`${label}: socket errors under load:\n${r.text}`);
    if (r.requests === 0 || r.bytes < r.requests * FILE_SIZE) throw new Error(`${label}: responses without the file's bytes under load:\n${r.text}`);
  } else {
    if (r.non200 !== 0 || r.errors !== 0 || r.wrongSize !== 0 || r.ok === 0) {
      throw new Error(`${label}: not every response was 200 with the file (403: the certificate was refused, the setup is wrong): ${JSON.stringify(r)}`);
    }
  }
}

function describeRun(r) {
  if ('status_errors' in r) {
    return `${r.requests} requests in ${r.seconds.toFixed(2)} s  p50 ${(r.latency_p50_us / 1000).toFixed(2)} ms  p99 ${(r.latency_p99_us / 1000).toFixed(2)} ms  all 200`;
  }
  return `${r.ok} requests in ${r.seconds.toFixed(2)} s  p50 ${r.latency_p50_ms.toFixed(2)} ms  p99 ${r.latency_p99_ms.toFixed(2)} ms  all 200, ${r.connectionsUsed} TLS connections`;
}

function table(rows) {
  const head = ['mode', 'off req/s', 'on req/s', 'on/off'];
  const cells = rows.map((r) => [r.title, fmtInt(r.off), fmtInt(r.on), fmtRatio(r.ratio)]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c) => `| ${c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 2)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...cells.map(line)].join('\n');
}

runMain(main, 'entitlement');
