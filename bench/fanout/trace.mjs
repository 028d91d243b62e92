// A timeline of the lazy-content server in the fan-out benchmark (`BENCH_TRACE=DIR node bench/fanout.mjs`):
// when each connection was accepted, each request for the measured file was parsed and got its first bytes
// out, the fill's events, and the turns of the event loop. `summarize` turns it into the figures that
// docs/BENCHMARKS.md quotes ("where the time to first byte goes"). Used by bench/fanout/lazy-express.mjs.
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/**
 * The main thread's scheduler figures from Linux's /proc (its task id is the process id): ms spent on a CPU and
 * ms spent runnable but waiting for one. Null where there is no such file.
 */
function schedstat() {
  try {
    const [onCpu, waiting] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { t: performance.now(), onCpuMs: onCpu / 1e6, waitingMs: waiting / 1e6 };
  } catch {
    return null;
  }
}

/**
 * Starts recording on `server` and `fills` (the lazy-content instance's fill events) for requests whose URL
 * contains `marker`. Returns `mark(name)` for other moments (such as burstAccept's duration) and `write(file)`,
 * which writes the events and the summary as JSON.
 */
export function startTrace(server, fills, marker) {
  const events = [];
  const at = (name, extra) => events.push({ name, t: performance.now(), ...extra });
  // The main thread's time on and off the CPU from the first request to the last first bytes out: whether it
  // was busy, or runnable and waiting while the clients' processes had the CPUs.
  const sched = { first: null, last: null };
  server.prependListener('connection', () => at('connection'));
  server.prependListener('request', (req, res) => {
    if (!req.url.includes(marker)) return;
    at('request');
    sched.first ??= schedstat();
    // Node sends the status line and headers with the first write, or on flushHeaders: whichever comes first.
    let out = false;
    for (const method of ['write', 'end', 'flushHeaders']) {
      const original = res[method];
      res[method] = function (...args) {
        if (!out) {
          out = true;
          at('first-out');
          sched.last = schedstat();
        }
        return original.apply(this, args);
      };
    }
  });
  for (const name of ['fill:started', 'fill:head', 'fill:completed']) {
    fills.on(name, (e) => {
      if (String(e.key).includes(marker)) at(name);
    });
  }
  // One mark per turn of the event loop (the check phase runs once a turn).
  const turns = [];
  const turn = () => {
    turns.push(performance.now());
    setImmediate(turn).unref();
  };
  setImmediate(turn).unref();
  return {
    mark: (name, extra) => at(name, extra),
    write(file) {
      writeFileSync(file, JSON.stringify({ summary: { ...summarize(events, turns), mainThread: mainThread(sched) }, events }, null, 1));
    },
  };
}

/** From the first request to the last first bytes out: wall, on a CPU, and runnable but waiting for a CPU (ms). */
function mainThread({ first, last }) {
  if (!first || !last) return null;
  return {
    wallMs: round(last.t - first.t),
    onCpuMs: round(last.onCpuMs - first.onCpuMs),
    waitingForCpuMs: round(last.waitingMs - first.waitingMs),
  };
}

const round = (ms) => Math.round(ms * 100) / 100;
const quantile = (xs, q) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return round(s[Math.min(s.length - 1, Math.floor(q * s.length))]);
};

/** The figures of a timeline, in ms from the first request for the measured file. */
export function summarize(events, turns) {
  const requests = events.filter((e) => e.name === 'request');
  if (requests.length === 0) return { requests: 0 };
  const t0 = requests[0].t;
  const last = requests[requests.length - 1].t;
  // Connections of the measured run: from just before its first request to its last.
  const connections = events.filter((e) => e.name === 'connection' && e.t >= t0 - 50 && e.t <= last);
  const perTurn = new Map();
  for (const c of connections) {
    // The turn a connection was accepted in: the last turn mark before it.
    let lo = 0;
    let hi = turns.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (turns[mid] <= c.t) lo = mid;
      else hi = mid - 1;
    }
    perTurn.set(lo, (perTurn.get(lo) ?? 0) + 1);
  }
  const counts = [...perTurn.values()];
  // Each request's own time, from its parse to its first bytes out, for requests answered in the order they came.
  const outs = events.filter((e) => e.name === 'first-out');
  const served = requests.map((r, i) => (outs[i] ? outs[i].t - r.t : null)).filter((x) => x !== null);
  const gaps = requests.slice(1).map((r, i) => r.t - requests[i].t);
  const lengths = turns.slice(1).map((t, i) => [turns[i], t - turns[i]]).filter(([t]) => t >= t0 && t < t0 + 100).map(([, d]) => d);
  const first = (name) => events.find((e) => e.name === name)?.t;
  const accept = events.find((e) => e.name === 'burst-accept');
  return {
    requests: requests.length,
    burstAcceptMs: accept ? round(accept.ms) : null,
    connectionsPerTurn: { max: counts.length ? Math.max(...counts) : 0, turnsWithMoreThanOne: counts.filter((n) => n > 1).length, connections: connections.length },
    fillStartedAfterMs: first('fill:started') === undefined ? null : round(first('fill:started') - t0),
    upstreamAnsweredAfterStartMs: first('fill:head') === undefined ? null : round(first('fill:head') - first('fill:started')),
    lastRequestParsedMs: round(last - t0),
    requestToFirstOutMs: { median: quantile(served, 0.5), p90: quantile(served, 0.9) },
    betweenRequestsMs: { median: quantile(gaps, 0.5) },
    turnMsInFirst100: { median: quantile(lengths, 0.5), max: quantile(lengths, 1) },
  };
}
