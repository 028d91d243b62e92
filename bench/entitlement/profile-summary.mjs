// Where a protected server of bench/entitlement.mjs spent its time: reads a .cpuprofile (node --cpu-prof,
// as written with BENCH_PROFILE_DIR) and prints, as shares of the samples where the main thread was busy
// (not idle), the self time by function and the total time (self + callees) of the functions of the
// entitlement path: lazy-content's entitlementRefusal, everything in packages/core/dist/entitlement/, and
// the node functions they call (getPeerCertificate, decodeURIComponent, hashing, …).
//
//   BENCH_PROFILE_DIR=/tmp/prof BENCH_RETRIES=0 node bench/entitlement.mjs
//   node bench/entitlement/profile-summary.mjs /tmp/prof/header/CPU.….cpuprofile [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string' } } });
if (positionals.length !== 1) {
  process.stderr.write('usage: node bench/entitlement/profile-summary.mjs FILE.cpuprofile [--top N]\n');
  process.exit(2);
}
const TOP = Number(values.top ?? 25);
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const where = ({ url, lineNumber }) =>
  url ? `${url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*\/packages\//, 'packages/')}:${lineNumber + 1}` : '';
const label = (node) => `${node.callFrame.functionName || '(anonymous)'} ${where(node.callFrame)}`.trim();

const counts = new Map();
for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);

let busy = 0;
const self = new Map();
const total = new Map();
/** Functions of interest inside the entitlement path (counted in total time, once per sample). */
const interesting = (node) => {
  const { url, functionName } = node.callFrame;
  return url.includes('/entitlement/') || functionName === 'entitlementRefusal' || functionName === 'peerCertificateOf';
};
let inEntitlement = 0;
for (const [id, n] of counts) {
  const node = nodes.get(id);
  const name = node.callFrame.functionName;
  if (name === '(idle)') continue;
  busy += n;
  self.set(label(node), (self.get(label(node)) ?? 0) + n);
  // Walk up the stack: every distinct frame gets the sample in its total; note if the entitlement path is on it.
  const seen = new Set();
  let inside = false;
  const chain = [];
  for (let at = id; at !== undefined; at = parent.get(at)) chain.push(nodes.get(at));
  for (const frame of chain) if (interesting(frame)) inside = true;
  if (!inside) continue;
  inEntitlement += n;
  for (const frame of chain) {
    const key = label(frame);
    if (seen.has(key) || key.startsWith('(root)')) continue;
    seen.add(key);
    total.set(key, (total.get(key) ?? 0) + n);
  }
}

const pct = (n) => `${((n / busy) * 100).toFixed(1).padStart(5)} %`;
const span = (profile.endTime - profile.startTime) / 1e6;
console.log(`${busy} busy samples (of ${profile.samples.length}) over ${span.toFixed(1)} s; shares below are of the busy samples`);
console.log(`\nentitlement path (entitlementRefusal, peerCertificateOf, packages/core/…/entitlement/), total time: ${pct(inEntitlement).trim()}`);
console.log('  total time of the functions on it (self + callees; only samples inside the entitlement path):');
const onPath = [...total].filter(([k]) => !/^(processTicksAndRejections|runMicrotasks|handle |next |.*router|.*express)/.test(k));
for (const [k, n] of onPath.sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${pct(n)}  ${k}`);
console.log(`\ntop ${TOP} functions by self time (whole server):`);
for (const [k, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${pct(n)}  ${k}`);
