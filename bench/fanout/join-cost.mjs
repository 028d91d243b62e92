// What a request costs the server when it joins a download in progress: the common case of the fan-out
// benchmark after its first client. An origin sends the first MiB of a 64 MiB file and then holds the rest; a
// lazy-content Express server (bench/fanout/lazy-express.mjs's setup, with burstAccept) has that download
// running; wrk asks for `Range: bytes=0-0` of the file over keep-alive connections, so that each request joins
// the fill, gets one byte from the growing file and ends. Two modes: the content URL with `streamer.inline`,
// and the streamer's signed link (the second request of a redirected client).
//
//   npx tsc -b && node bench/fanout/join-cost.mjs                 # BENCH_SECONDS (10)
//   BENCH_JOIN_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" node bench/fanout/join-cost.mjs   # then cpu-profile.mjs
//
// Prints requests/s (wrk: 1 thread, 50 connections) and the server process's CPU time per request.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { serve: { type: 'boolean' }, inline: { type: 'boolean' }, 'data-dir': { type: 'string' } } });
const SIZE = 64 * 1024 * 1024;

if (values.serve) await serve();
else await measure();

/** The server: an origin in this process (it only has to answer once) and lazy-content in front of it. */
async function serve() {
  const express = (await import('express')).default;
  const { burstAccept, lazyContent } = await import('@lazy-content/express');
  const first = Buffer.alloc(1024 * 1024, 7);
  const origin = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': SIZE });
    res.write(first);
    // …and nothing more: the download stays in progress for the whole measurement.
  });
  await new Promise((resolve) => origin.listen(0, '127.0.0.1', resolve));
  const handler = lazyContent({ dataDir: values['data-dir'], logger: false, streamer: { inline: Boolean(values.inline) } });
  const catalog = await handler.lazyContent.catalog();
  await catalog.addRemote({ name: 'origin', bodyIdleTimeoutMs: 3_600_000 });
  await catalog.addEntries([{ path: 'bench/joined.bin', remote: 'origin', url: `http://127.0.0.1:${origin.address().port}/joined.bin`, size: SIZE }]);
  const server = http.createServer(express().use(handler));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  await burstAccept(server);
  const base = `http://127.0.0.1:${server.address().port}`;
  // The first request starts the download; inline it streams, else it is the 302 to the link.
  const target = await new Promise((resolve, reject) => {
    http
      .get(`${base}/content/bench/joined.bin`, (res) => {
        resolve(res.headers.location ? new URL(res.headers.location, base).href : `${base}/content/bench/joined.bin`);
        res.resume();
      })
      .on('error', reject);
  });
  if (!values.inline) http.get(target, (res) => res.resume());
  process.stdout.write(`ready ${target}\n`);
  process.once('SIGTERM', () => process.exit(0));
}

async function measure() {
  const { processTicks, runWrk, SECONDS } = await import('../serve.mjs');
  const script = fileURLToPath(import.meta.url);
  const extra = process.env.BENCH_JOIN_NODE_ARGS ? process.env.BENCH_JOIN_NODE_ARGS.split(/\s+/).filter(Boolean) : [];
  const ticksPerSecond = 100;
  for (const mode of ['inline', 'streamer link']) {
    const dir = mkdtempSync(path.join(tmpdir(), 'join-cost-'));
    const args = [...extra, script, '--serve', '--data-dir', dir, ...(mode === 'inline' ? ['--inline'] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const target = await new Promise((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (c) => {
          out += c;
          const m = /^ready (\S+)$/m.exec(out);
          if (m) resolve(m[1]);
        });
        child.once('exit', (code) => reject(new Error(`the server exited (${code}) before it was ready`)));
      });
      await runWrk(2, target, ['-H', 'Range: bytes=0-0']);
      const before = processTicks(child.pid);
      const r = await runWrk(SECONDS, target, ['-H', 'Range: bytes=0-0']);
      const cpuS = (processTicks(child.pid) - before) / ticksPerSecond;
      if (r.status_errors > 0 || r.socketErrors > 0) throw new Error(`${mode}: ${r.status_errors} bad answers, ${r.socketErrors} socket errors`);
      process.stdout.write(`${mode.padEnd(14)} ${Math.round(r.reqPerSec).toLocaleString('en-US')} requests/s, server CPU ${((cpuS / r.requests) * 1e6).toFixed(0)} µs per request\n`);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve()));
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
