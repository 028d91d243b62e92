// An experiment for the fan-out benchmark: lazy-content as N cluster workers sharing one port, each accepting
// its own connections (cluster.SCHED_NONE, with burstAccept) and each with its own data folder, so its own
// fill: N upstream fetches. It shows whether a second JavaScript thread shortens the time to first byte.
//
//   BENCH_LAZY_SCRIPT=bench/fanout/lazy-cluster.mjs BENCH_SIZES=64 BENCH_ONLY=lazy-content,lazy-content-inline \
//     node bench/fanout.mjs                                       # LAZY_WORKERS (2)
//
// Takes bench/fanout/lazy-express.mjs's arguments and passes them on (`--data-dir D` becomes `D-0`, `D-1`, …);
// prints "ready <port>" once every worker listens.
import cluster from 'node:cluster';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const workers = Number(process.env.LAZY_WORKERS ?? 2);
if (!Number.isInteger(workers) || workers < 1) throw new Error(`LAZY_WORKERS must be a whole number ≥ 1, got ${process.env.LAZY_WORKERS}`);
// Each worker accepts from the shared socket itself: with the default round-robin, the primary accepts and
// hands over one connection per worker at a time.
cluster.schedulingPolicy = cluster.SCHED_NONE;

const args = process.argv.slice(2);
const dataDir = args.indexOf('--data-dir');
if (dataDir < 0) throw new Error('missing --data-dir');
// One port for all: chosen here, since each worker's `listen(0)` would get a port of its own.
const port = await new Promise((resolve) => {
  const probe = net.createServer().listen(0, '127.0.0.1', () => {
    const { port: free } = probe.address();
    probe.close(() => resolve(free));
  });
});
let ready = 0;
for (let i = 0; i < workers; i++) {
  const own = [...args];
  own[dataDir + 1] = `${args[dataDir + 1]}-${i}`;
  const at = own.indexOf('--port');
  if (at >= 0) own[at + 1] = String(port);
  else own.push('--port', String(port));
  cluster.setupPrimary({ exec: path.join(path.dirname(fileURLToPath(import.meta.url)), 'lazy-express.mjs'), args: own, silent: true });
  const worker = cluster.fork();
  worker.process.stdout.on('data', (chunk) => {
    if (/^ready \d+$/m.test(String(chunk)) && ++ready === workers) process.stdout.write(`ready ${port}\n`);
  });
  worker.process.stderr.pipe(process.stderr);
}
const stop = () => {
  for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
