// The origin of the fan-out benchmark: serves `/file-<bytes>.bin` (deterministic pseudo-random bytes, see
// data.mjs) with Content-Length, throttled to RATE bytes per second per connection, and counts requests.
//
//   node bench/fanout/origin.mjs [--port N] [--rate BYTES_PER_SECOND]     prints "ready <port>"
//
//   GET /file-<bytes>.bin            the file (HEAD too); Cache-Control: public, max-age=3600, a fixed Last-Modified
//   GET /_count?path=/file-<b>.bin   {"path","requests","completed","bytesSent"} since start
//
// Pacing: bench/fanout/paced.mjs.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { filePath, MiB } from './data.mjs';
import { pacedSender } from './paced.mjs';

const { values } = parseArgs({ options: { port: { type: 'string' }, rate: { type: 'string' }, host: { type: 'string' } } });
const PORT = Number(values.port ?? 0);
const HOST = values.host ?? '127.0.0.1';
const RATE = Number(values.rate ?? 32 * MiB);
const MAX_SIZE = 4 * 1024 * MiB;
const send = pacedSender(RATE);

/** path → { requests, completed, bytesSent } */
const counts = new Map();

function countOf(path) {
  let c = counts.get(path);
  if (!c) counts.set(path, (c = { requests: 0, completed: 0, bytesSent: 0 }));
  return c;
}

function sendFile(req, res, path, size) {
  const count = countOf(path);
  count.requests++;
  send(req, res, size, count);
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://origin');
  if (url.pathname === '/_count') {
    const path = url.searchParams.get('path') ?? '';
    const c = counts.get(path) ?? { requests: 0, completed: 0, bytesSent: 0 };
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ path, ...c }));
    return;
  }
  const m = /^\/file-(\d+)\.bin$/.exec(url.pathname);
  const size = m ? Number(m[1]) : NaN;
  if ((req.method === 'GET' || req.method === 'HEAD') && m && filePath(size) === url.pathname && size <= MAX_SIZE) {
    sendFile(req, res, url.pathname, size);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
  res.end('not found\n');
});
server.keepAliveTimeout = 60_000;
server.on('error', (err) => {
  process.stderr.write(`origin: ${err.message}\n`);
  process.exit(2);
});
server.listen(PORT, HOST, () => process.stdout.write(`ready ${server.address().port}\n`));
const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
