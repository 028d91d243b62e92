// Measures one fill shared by many readers: wall time and peak RSS. Prints, asserts nothing.
//   npx tsc -b && node test/streamer/bench-fill.mjs            (readers consume the fill directly)
//   BENCH_HTTP=1 node test/streamer/bench-fill.mjs             (readers are HTTP clients of a node:http server)
//   BENCH_READERS=50 BENCH_MIB=64 BENCH_UPSTREAM_MIBPS=0 ...   (0 = unthrottled loopback upstream)
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { DiskCache, FillEngine } from '../../packages/core/dist/streamer/index.js';

const readers = Number(process.env.BENCH_READERS ?? 50);
const size = Number(process.env.BENCH_MIB ?? 64) * 1024 * 1024;
const throughHttp = process.env.BENCH_HTTP === '1';
const upstreamMiBps = Number(process.env.BENCH_UPSTREAM_MIBPS ?? 0);

// The upstream runs in a child process, so that the RSS measured here is the engine's alone.
if (process.argv[2] === '--upstream') {
  const body = randomBytes(size);
  const upstream = http.createServer((req, res) => {
    res.writeHead(200, { 'content-length': size });
    if (upstreamMiBps <= 0) return void res.end(body);
    const perTick = Math.ceil((upstreamMiBps * 1024 * 1024) / 20);
    let sent = 0;
    const timer = setInterval(() => {
      const next = body.subarray(sent, sent + perTick);
      sent += next.length;
      if (sent >= size) {
        clearInterval(timer);
        res.end(next);
      } else res.write(next);
    }, 50);
  });
  upstream.listen(0, '127.0.0.1', () => {
    process.send({ port: upstream.address().port, digest: createHash('sha256').update(body).digest('hex') });
  });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main() {
const child = fork(fileURLToPath(import.meta.url), ['--upstream'], { stdio: 'inherit' });
const { port, digest } = await new Promise((resolve) => child.once('message', resolve));

const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-bench-'));
const cache = new DiskCache({ dir });
await cache.init();
const engine = new FillEngine({ cache });
const remote = {
  id: 1, name: 'bench', tls: { ca: null, cert: null, key: null, verify: true }, proxyUrl: null, headers: null,
  basicAuth: null, connectTimeoutMs: 10_000, headersTimeoutMs: 30_000, bodyIdleTimeoutMs: 30_000,
  maxConcurrentDownloads: 10, policy: 'on_demand', createdAt: new Date(0), updatedAt: new Date(0),
};
const entry = {
  id: 1, path: 'bench.bin', remoteId: 1, url: `http://127.0.0.1:${port}/bench.bin`, size,
  digestAlgorithm: 'sha256', digest, contentType: 'application/octet-stream', priority: 0, savedAt: null,
};
const sources = [{ entry, remote }];

/** Consumes a stream; the first two readers hash what they get, the others only count. */
async function consume(stream, i) {
  const hash = i < 2 ? createHash('sha256') : null;
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += chunk.length;
    hash?.update(chunk);
  }
  return { bytes, ok: hash ? hash.digest('hex') === digest : bytes === size };
}

let front;
if (throughHttp) {
  front = http.createServer(async (req, res) => {
    const acquired = await engine.open('bench.bin', sources);
    if (acquired.kind === 'cached') {
      res.writeHead(200, { 'content-length': acquired.file.info.size });
      acquired.file.slice(0, acquired.file.info.size - 1).pipe(res).on('close', () => acquired.file.close());
      return;
    }
    const head = await acquired.fill.head;
    res.writeHead(200, { 'content-length': head.size });
    await acquired.fill.createBody().writeTo(res);
  });
  await new Promise((resolve) => front.listen(0, '127.0.0.1', resolve));
}

const started = performance.now();
const results = await Promise.all(
  Array.from({ length: readers }, async (_, i) => {
    if (!throughHttp) {
      const acquired = await engine.open('bench.bin', sources);
      return consume(acquired.kind === 'fill' ? acquired.fill.createReader() : acquired.file.slice(0, size - 1), i);
    }
    const res = await new Promise((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: front.address().port, path: '/bench.bin', agent: false }, resolve).on('error', reject),
    );
    return consume(res, i);
  }),
);
const wallMs = performance.now() - started;
const record = await engine.running('bench.bin')?.done;

const usage = process.resourceUsage();
console.log(
  JSON.stringify(
    {
      readers,
      fileMiB: size / 1024 / 1024,
      mode: throughHttp ? 'http clients' : 'direct readers',
      upstream: upstreamMiBps > 0 ? `${upstreamMiBps} MiB/s` : 'unthrottled loopback',
      wallMs: Math.round(wallMs),
      allReadersComplete: results.every((r) => r.ok),
      deliveredMiBps: Math.round((readers * size) / 1024 / 1024 / (wallMs / 1000)),
      peakRssMiB: Math.round(usage.maxRSS / 1024),
      cached: cache.lookup('bench.bin') !== null || record !== undefined,
      cpus: os.cpus().length,
    },
    null,
    2,
  ),
);

await engine.close();
await cache.close();
front?.close();
child.disconnect();
await fsp.rm(dir, { recursive: true, force: true });
}
