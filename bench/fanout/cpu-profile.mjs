// Where the lazy-content child of the fan-out benchmark spent its time: reads a .cpuprofile written by
// `node --cpu-prof` and prints self time by function and by package, optionally only within a time window
// (the clients' run, which bench/fanout.mjs prints as CLOCK_MONOTONIC microseconds when profiling).
//
//   BENCH_SIZES=64 BENCH_ONLY=lazy-content BENCH_LAZY_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench/fanout.mjs
//   node bench/fanout/cpu-profile.mjs /tmp/prof/CPU.….cpuprofile [--window FROM_US,TO_US] [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { window: { type: 'string' }, top: { type: 'string' } },
});
if (positionals.length !== 1) {
  process.stderr.write('usage: node bench/fanout/cpu-profile.mjs FILE.cpuprofile [--window FROM_US,TO_US] [--top N]\n');
  process.exit(2);
}
const TOP = Number(values.top ?? 25);
const [from, to] = values.window ? values.window.split(',').map(Number) : [-Infinity, Infinity];
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const counts = new Map();
let t = profile.startTime;
let kept = 0;
let first = Infinity;
let last = -Infinity;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i];
  if (t < from || t > to) continue;
  kept++;
  first = Math.min(first, t);
  last = Math.max(last, t);
  counts.set(profile.samples[i], (counts.get(profile.samples[i]) ?? 0) + 1);
}
if (kept === 0) {
  process.stderr.write('no samples in that window\n');
  process.exit(1);
}

function packageOf(url) {
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return 'node internals';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.includes('/packages/')) return `@lazy-content/${url.split('/packages/')[1].split('/')[0]}`;
  if (url.includes('/bench/')) return 'bench';
  return url;
}

const SPECIAL = ['(idle)', '(program)', '(garbage collector)'];
const byFunction = new Map();
const byPackage = new Map();
let idle = 0;
for (const [id, n] of counts) {
  const { functionName, url, lineNumber } = nodes.get(id).callFrame;
  const name = functionName || '(anonymous)';
  if (name === '(idle)') idle += n;
  const where = url ? `${url.replace(/^file:\/\//, '').replace(/^.*node_modules\//, '').replace(/^.*\/packages\//, 'packages/')}:${lineNumber + 1}` : '';
  const key = `${name} ${where}`.trim();
  byFunction.set(key, (byFunction.get(key) ?? 0) + n);
  const pkg = SPECIAL.includes(name) ? name : packageOf(url);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + n);
}
const span = (last - first) / 1e6;
const pct = (n) => `${((n / kept) * 100).toFixed(1).padStart(5)} %`;
console.log(`${kept} samples over ${span.toFixed(2)} s; main thread busy (not idle) ${pct(kept - idle).trim()} of the time`);
console.log('\nself time by package:');
for (const [k, n] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(n)}  ${k}`);
console.log(`\ntop ${TOP} functions by self time:`);
for (const [k, n] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`  ${pct(n)}  ${k}`);
