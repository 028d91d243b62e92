// A probe of lazy-content's streamer inside the fan-out benchmark's server, preloaded into the lazy-content
// child with `--import`. It counts how readers of a growing file got their bytes (from the download's memory
// window, or from disk), notes the time at every 32 MiB the download received (its pace), and the event loop's
// delay; at exit it writes them to BENCH_PROBE_DIR/probe-<pid>.json (one file per lazy-content run).
//
//   BENCH_PROBE_DIR=/tmp/probe BENCH_LAZY_NODE_ARGS="--import=$PWD/bench/fanout/probe.mjs" \
//     BENCH_SIZES=1024 BENCH_ONLY=lazy-content-inline node bench/fanout.mjs
//
// It wraps two methods of LocalGrowingFile from packages/core/dist (the module the server loads too, so build
// first with `npx tsc -b`): `recentBytes`, which a reader calls for each read while the window exists (until
// the download's last reader leaves) and which answers undefined when the bytes have left the window (the reader
// then reads them from disk), and `keep`, which the fill calls for
// each chunk of the download. Only downloads of 64 MiB or more are reported (not the benchmark's warm-up file).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { LocalGrowingFile } from '../../packages/core/dist/streamer/growing-file.js';

const dir = process.env.BENCH_PROBE_DIR;
if (!dir) throw new Error('probe.mjs: set BENCH_PROBE_DIR');
const MARK = 32 * 1024 * 1024;
const REPORTED = 64 * 1024 * 1024;

/** Per growing file: its reads and the download's pace. */
const files = new Map();
const stateOf = (file) => {
  let s = files.get(file);
  if (!s) {
    s = { received: 0, readsFromMemory: 0, readsFromDisk: 0, bytesFromDisk: 0, bytesFromDiskDuringDownload: 0, firstDiskRead: null, marks: [] };
    files.set(file, s);
  }
  return s;
};

const recentBytes = LocalGrowingFile.prototype.recentBytes;
LocalGrowingFile.prototype.recentBytes = function probedRecentBytes(position, end) {
  const got = recentBytes.call(this, position, end);
  if (end > position) {
    const s = stateOf(this);
    if (got) s.readsFromMemory++;
    else {
      s.readsFromDisk++;
      s.bytesFromDisk += end - position;
      if (this.state === 'growing') s.bytesFromDiskDuringDownload += end - position;
      s.firstDiskRead ??= {
        msAfterDownloadStart: Math.round(performance.now() - (s.marks[0]?.t ?? performance.now())),
        position,
        bytesBehindReadable: this.readableBytes - position,
      };
    }
  }
  return got;
};

const keep = LocalGrowingFile.prototype.keep;
LocalGrowingFile.prototype.keep = function probedKeep(bytes, offset) {
  const s = stateOf(this);
  if (s.marks.length === 0) s.marks.push({ mib: 0, t: performance.now() });
  const end = offset + bytes.length;
  if (Math.floor(end / MARK) > Math.floor(s.received / MARK)) s.marks.push({ mib: Math.round(end / 1048576), t: performance.now() });
  s.received = end;
  return keep.call(this, bytes, offset);
};

const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();

process.once('exit', () => {
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  const downloads = [...files.values()]
    .filter((s) => s.received >= REPORTED)
    .map(({ marks, received, ...reads }) => {
      const seconds = (marks[marks.length - 1].t - marks[0].t) / 1000;
      const paces = marks.slice(1).map((m, i) => (m.mib - marks[i].mib) / ((m.t - marks[i].t) / 1000));
      return {
        mib: Math.round(received / 1048576),
        seconds: Math.round(seconds * 1000) / 1000,
        paceMiBps: { lowest: Math.round(Math.min(...paces) * 10) / 10, highest: Math.round(Math.max(...paces) * 10) / 10 },
        ...reads,
      };
    });
  const summary = {
    downloads,
    eventLoopDelayMs: { p50: ms(delay.percentile(50)), p90: ms(delay.percentile(90)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `probe-${process.pid}.json`), `${JSON.stringify(summary, null, 1)}\n`);
});
