// The entitlement path's own cost, without HTTP, wrk or a second process: µs per `LazyContent.handle()` of the
// saved 4 KiB file of bench/entitlement.mjs, with protection off and on, the certificate given as a proxy
// header (URL-encoded PEM) or as a TLS socket's DER (what `peerCertificate()` returns; the cost of
// `getPeerCertificate()` itself is not included). Deterministic enough to compare two builds of packages/.
//
//   npx tsc -b && node bench/entitlement/handle-cost.mjs        (BENCH_CALLS=50000 per figure, BENCH_ROUNDS=5)
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createLazyContent } from '@lazy-content/core';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'entitlement');
const FILE_PATH = 'Default_Organization/Library/content/dist/rhel8/8/x86_64/baseos/os/repodata/repomd.xml';
const CALLS = Number(process.env.BENCH_CALLS ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const tmp = mkdtempSync(path.join(os.tmpdir(), 'lazy-content-handle-cost-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
setTimeout(() => {
  process.stderr.write('handle-cost: time limit exceeded\n');
  process.exit(1);
}, 600_000).unref();

const root = path.join(tmp, 'files');
mkdirSync(path.dirname(path.join(root, FILE_PATH)), { recursive: true });
writeFileSync(path.join(root, FILE_PATH), Buffer.alloc(4096, 1));
const pem = readFileSync(path.join(FIXTURES, 'rhsm/v3/5527980418107729172.pem'), 'utf8');
const escaped = encodeURIComponent(pem);
const der = new X509Certificate(pem).raw;
const ca = readFileSync(path.join(FIXTURES, 'rhsm/katello-default-ca.crt'), 'utf8');

const make = (on) =>
  createLazyContent({
    prefix: '/content/',
    root,
    dataDir: path.join(tmp, on ? 'data-on' : 'data-off'),
    logger: false,
    ...(on ? { entitlement: { rules: [{ prefix: '/', ca, policy: 'rhsm' }], trustedProxies: ['127.0.0.1'] } } : {}),
  });
const cores = { off: make(false), on: make(true) };
const url = `/content/${FILE_PATH}`;
const requests = {
  header: () => ({ method: 'GET', url, headers: { host: 'h', 'x-client-cert': escaped }, remoteAddress: '127.0.0.1' }),
  socket: () => ({ method: 'GET', url, headers: { host: 'h' }, remoteAddress: '127.0.0.1', peerCertificate: () => der }),
};

const figures = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [source, request] of Object.entries(requests)) {
    for (const [protect, core] of Object.entries(cores)) {
      const first = await core.handle(request());
      if (first.kind === 'deny' || first.status !== 200) throw new Error(`${source} ${protect}: not served (${first.kind} ${first.status ?? ''} ${first.reason ?? ''})`);
      const t = performance.now();
      for (let i = 0; i < CALLS; i++) await core.handle(request());
      (figures[`${source} ${protect}`] ??= []).push(((performance.now() - t) / CALLS) * 1000);
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`µs per handle() of the saved 4 KiB file, median of ${ROUNDS} rounds of ${CALLS} calls (node ${process.version}):`);
for (const source of Object.keys(requests)) {
  const off = median(figures[`${source} off`]);
  const on = median(figures[`${source} on`]);
  console.log(`  certificate as ${source.padEnd(6)}  off ${off.toFixed(1).padStart(5)} µs  on ${on.toFixed(1).padStart(5)} µs  entitlement +${(on - off).toFixed(1)} µs`);
}
await Promise.all(Object.values(cores).map((c) => c.close()));
process.exit(0);
