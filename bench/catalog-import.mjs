// Bulk import into the catalog: 100,000 entries, then the same 100,000 again (an idempotent re-import),
// then 10,000 lookups, on SQLite and (when reachable) PostgreSQL. Prints a table; asserts nothing.
//   node bench/catalog-import.mjs            (after `npm run build`)
//   BENCH_ENTRIES=20000 node bench/catalog-import.mjs
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Catalog, openCatalogDatabase, SecretBox } from '@lazy-content/core';

const N = Number(process.env.BENCH_ENTRIES ?? 100_000);
const LOOKUPS = 10_000;
const POSTGRES = process.env.LAZY_CONTENT_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

function* entries() {
  for (let i = 0; i < N; i++) {
    yield {
      path: `bench/Packages/${String(i % 26 + 10).padStart(2, '0')}/package-${i}-1.0-1.el9.x86_64.rpm`,
      remote: 'bench',
      url: `https://127.0.0.1:1/repo/Packages/package-${i}-1.0-1.el9.x86_64.rpm`,
      size: 1000 + i,
      digest: randomBytes(32).toString('hex'),
    };
  }
}

async function measure(label, url) {
  const { dataSource } = await openCatalogDatabase({ url, runMigrations: true, dataDir: os.tmpdir() });
  const catalog = new Catalog(dataSource, new SecretBox(randomBytes(32)));
  await catalog.addRemote({ name: 'bench' });
  let t = performance.now();
  await catalog.addEntries(entries());
  const first = performance.now() - t;
  t = performance.now();
  await catalog.addEntries(entries());
  const again = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < LOOKUPS; i++) {
    const j = (i * 7919) % N;
    await catalog.lookup(`bench/Packages/${String(j % 26 + 10).padStart(2, '0')}/package-${j}-1.0-1.el9.x86_64.rpm`);
  }
  const lookups = performance.now() - t;
  await dataSource.destroy();
  return { label, first, again, lookupUs: (lookups * 1000) / LOOKUPS };
}

const rows = [];
const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-bench-catalog-'));
try {
  rows.push(await measure('SQLite (file, WAL)', path.join(dir, 'catalog.sqlite')));
} finally {
  await fsp.rm(dir, { recursive: true, force: true });
}

const schema = `lc_bench_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: POSTGRES, connectionTimeoutMillis: 2000 });
try {
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const url = new URL(POSTGRES);
  url.searchParams.set('options', `-c search_path=${schema}`);
  rows.push(await measure('PostgreSQL (loopback)', url.toString()));
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
} catch (err) {
  console.log(`PostgreSQL skipped: ${err.message}`);
} finally {
  await admin.end().catch(() => {});
}

console.log(`\ncatalog import, ${N.toLocaleString('en')} entries (node ${process.version}, ${os.cpus().length} cores)\n`);
console.log('| database | first import | re-import (same entries) | lookup (one query, mean) |');
console.log('|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.label} | ${(r.first / 1000).toFixed(2)} s | ${(r.again / 1000).toFixed(2)} s | ${r.lookupUs.toFixed(0)} µs |`);
}
