// The Node floor of the fan-out benchmark: what the best possible Node.js server does under the same burst of
// clients, with no proxy work at all. It has the file's bytes in memory from the start (no upstream, no disk,
// no catalog, nothing to verify) and answers every request at once, then sends the file at the origin's rate
// (bench/fanout/paced.mjs), as a client that follows a download receives it. Its time to first byte is
// therefore a lower bound for any Node.js server on this machine, lazy-content included.
//
//   node bench/fanout/node-floor.mjs --port N [--rate BYTES_PER_SECOND] [--express] [--acceptors N] [--workers N]
//
// Serves `/file-<bytes>.bin` like the origin. --express answers from an Express 5 route instead of a bare
// `node:http` handler (the framework's own cost). --acceptors sets burstAccept's extra watchers (16 by
// default, as lazy-content's server in the benchmark; 0: Node's one accept per turn of the event loop).
// --workers N (default 1) runs N cluster workers on the port, each accepting on its own (cluster.SCHED_NONE):
// what a second JavaScript thread gives.
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import express from 'express';
import { burstAccept } from '@lazy-content/core';
import { filePath, MiB } from './data.mjs';
import { pacedSender } from './paced.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    rate: { type: 'string' },
    express: { type: 'boolean' },
    acceptors: { type: 'string' },
    workers: { type: 'string' },
  },
});
const workers = Number(values.workers ?? 1);
if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be a whole number ≥ 1, got ${values.workers}`);
if (workers > 1 && cluster.isPrimary) {
  if (!values.port || values.port === '0') throw new Error('--workers needs a --port');
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ args: process.argv.slice(2), silent: true });
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork();
    worker.process.stdout.on('data', (chunk) => {
      if (/^ready \d+$/m.test(String(chunk)) && ++ready === workers) process.stdout.write(`ready ${values.port}\n`);
    });
    worker.process.stderr.pipe(process.stderr);
  }
  const stopAll = () => {
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers).length === 0) process.exit(0);
    });
  };
  process.once('SIGTERM', stopAll);
  process.once('SIGINT', stopAll);
} else {
  serveOn(Number(values.port ?? 0));
}

function serveOn(port) {
  const send = pacedSender(Number(values.rate ?? 32 * MiB));
  const count = { bytesSent: 0, completed: 0 };
  const FILE = /^\/file-(\d+)\.bin$/;

  function serve(req, res) {
    const m = FILE.exec(req.url ?? '');
    const size = m ? Number(m[1]) : NaN;
    if (!m || filePath(size) !== req.url || size > 4096 * MiB) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    send(req, res, size, count);
  }

  let handler = serve;
  if (values.express) {
    const app = express();
    app.get(FILE, serve);
    handler = app;
  }
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  server.on('error', (err) => {
    process.stderr.write(`node-floor: ${err.message}\n`);
    process.exit(2);
  });
  server.listen(port, '127.0.0.1', () => {
    burstAccept(server, { acceptors: Number(values.acceptors ?? 16) }).then(
      () => process.stdout.write(`ready ${server.address().port}\n`),
      (err) => {
        process.stderr.write(`node-floor: burstAccept failed: ${err.message}\n`);
        process.exit(2);
      },
    );
  });
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
