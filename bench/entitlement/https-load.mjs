// HTTPS load with a client certificate, for bench/entitlement.mjs (wrk cannot present one): CONNECTIONS
// request loops share one keep-alive agent (maxSockets = CONNECTIONS, so one TLS connection per loop, one
// handshake each), each sending GET after GET until the time is up. Every response must be 200 with exactly
// --size body bytes; anything else is counted and reported (the runner fails on it).
//
//   node bench/entitlement/https-load.mjs --url https://127.0.0.1:PORT/content/… --cert FILE --key FILE \
//     [--connections 50] [--seconds 10] [--size 4096]
//
// Prints one line: HTTPS_LOAD {"requests":…,"ok":…,"seconds":…,"reqPerSec":…,…}. It is a Node process, so it
// is as much a bottleneck as the server: compare runs of this same generator, never its figures with wrk's.
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    connections: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '10' },
    size: { type: 'string', default: '4096' },
  },
  strict: true,
});
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const size = Number(values.size);
if (!values.url || !values.cert || !values.key) {
  process.stderr.write('usage: https-load.mjs --url URL --cert FILE --key FILE [--connections N] [--seconds S] [--size BYTES]\n');
  process.exit(2);
}
if (![connections, seconds, size].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write('--connections, --seconds and --size must be whole numbers above 0\n');
  process.exit(2);
}
const url = new URL(values.url);
if (url.protocol !== 'https:' || !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
  process.stderr.write('--url must be https:// on a loopback address\n');
  process.exit(2);
}

// Bounded whatever happens: a stuck server must not keep this process alive.
setTimeout(() => {
  process.stderr.write(`https-load: not done within ${seconds + 30} s\n`);
  process.exit(1);
}, (seconds + 30) * 1000).unref();

const agent = new https.Agent({
  keepAlive: true,
  maxSockets: connections,
  cert: readFileSync(values.cert),
  key: readFileSync(values.key),
  rejectUnauthorized: false,
});

let ok = 0;
let bytes = 0;
let wrongSize = 0;
let errors = 0;
let firstError;
const statuses = {};
const sockets = new Set();
const latencies = [];

function once() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = https.request(url, { agent, method: 'GET' }, (res) => {
      let n = 0;
      res.on('data', (chunk) => (n += chunk.length));
      res.on('end', () => {
        latencies.push(performance.now() - t0);
        bytes += n;
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        if (res.statusCode === 200 && n === size) ok++;
        else if (res.statusCode === 200) wrongSize++;
        resolve(true);
      });
      res.on('error', (err) => {
        errors++;
        firstError ??= err.message;
        resolve(false);
      });
    });
    req.on('socket', (socket) => sockets.add(socket));
    req.on('error', (err) => {
      errors++;
      firstError ??= err.message;
      resolve(false);
    });
    req.end();
  });
}

const start = performance.now();
const deadline = start + seconds * 1000;
await Promise.all(
  Array.from({ length: connections }, async () => {
    // A loop stops at its first failure: the run is wrong anyway, and a refused connection must not spin.
    while (performance.now() < deadline) if (!(await once())) break;
  }),
);
const elapsed = (performance.now() - start) / 1000;
agent.destroy();

latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] : 0);
const requests = latencies.length;
const report = {
  requests,
  ok,
  bytes,
  seconds: elapsed,
  reqPerSec: ok / elapsed,
  statuses,
  non200: requests - (statuses[200] ?? 0),
  wrongSize,
  errors,
  firstError,
  connectionsUsed: sockets.size,
  latency_p50_ms: pct(50),
  latency_p99_ms: pct(99),
};
process.stdout.write(`HTTPS_LOAD ${JSON.stringify(report)}\n`);
process.exit(0);
