// Runs bench/fanout.mjs several times and prints, per server and size, the median and the range of each
// round's figures. One run's time to first byte moves by several milliseconds from run to run on a shared
// 2-CPU machine; the median of several rounds is what the docs compare.
//
//   node bench/fanout/rounds.mjs [--rounds 5]            # BENCH_SIZES, BENCH_ONLY, … are passed on
//   BENCH_SIZES=64 BENCH_ONLY=lazy-content,lazy-content-inline,varnish node bench/fanout/rounds.mjs --rounds 5
//
// Each round is a full run of the script (fresh servers, warm-up, 50 clients); the order of the servers is the
// same in every round. A round that fails stops the whole thing.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write(`--rounds must be a whole number ≥ 1, got ${values.rounds}\n`);
  process.exit(2);
}
const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fanout.mjs');
const dir = mkdtempSync(path.join(tmpdir(), 'fanout-rounds-'));

function runOnce(round) {
  const json = path.join(dir, `round-${round}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { env: { ...process.env, BENCH_JSON: json }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`round ${round} exited with ${code}:\n${out.slice(-2000)}`));
      else resolve(JSON.parse(readFileSync(json, 'utf8')).results);
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (s) => (s * 1000).toFixed(1);

const byRow = new Map();
try {
  for (let round = 1; round <= rounds; round++) {
    const started = Date.now();
    const results = await runOnce(round);
    for (const r of results) {
      const key = `${r.size / 1024 / 1024} MiB  ${r.title}`;
      if (!byRow.has(key)) byRow.set(key, []);
      byRow.get(key).push(r);
    }
    process.stdout.write(`round ${round}/${rounds} done in ${((Date.now() - started) / 1000).toFixed(0)} s: ${results.map((r) => `${r.server} ${ms(r.ttfbMedianS)} ms`).join(', ')}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

process.stdout.write(`\nMedian over ${rounds} round(s) [lowest–highest]; TTFB in ms, wall in s\n\n`);
process.stdout.write('| file, server | TTFB median | TTFB p99 | wall | server CPU s | complete | upstream fetches |\n|---|---:|---:|---:|---:|---:|---:|\n');
for (const [key, rows] of byRow) {
  const cell = (pick, fmt) => {
    const xs = rows.map(pick);
    return `${fmt(median(xs))} [${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`;
  };
  const complete = rows.every((r) => r.complete === r.clients) ? 'all' : rows.map((r) => `${r.complete}/${r.clients}`).join(' ');
  const fetches = [...new Set(rows.map((r) => r.upstreamFetches))].join(', ');
  process.stdout.write(
    `| ${key} | ${cell((r) => r.ttfbMedianS, ms)} | ${cell((r) => r.ttfbP99S, ms)} | ${cell((r) => r.wallS, (s) => s.toFixed(3))} | ${cell((r) => r.serverCpuS, (s) => s.toFixed(2))} | ${complete} | ${fetches} |\n`,
  );
}
