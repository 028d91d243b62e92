// lazy-content under test in the fan-out benchmark: Express 5 + @lazy-content/express with default prefixes
// (content /content/, streamer /_lazy/stream/), a fresh data folder, and one catalog entry for the origin's
// file, registered before listening.
//
//   node bench/fanout/lazy-express.mjs --data-dir DIR --origin-port N --size BYTES [--digest SHA256_HEX] [--port N]
//                                      [--warm-size BYTES] [--inline] [--acceptors N] [--trace FILE]
//
// Prints "ready <port>" once listening. Without --digest the entry has a size but no digest. --warm-size adds a
// second entry, bench/file-<warm-size>.bin, for the benchmark's warm-up request. --inline sets streamer.inline
// (the content request streams the file itself instead of redirecting to the streamer). SIGTERM/SIGINT
// close the server and exit normally, so that `node --cpu-prof` writes its profile. --acceptors sets burstAccept's
// extra watchers of the listening socket (16 by default, as the Express example; 0 leaves Node's one accept per turn).
// --trace writes a timeline of the measured file's requests and its summary to FILE at exit (bench/fanout/trace.mjs).
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import express from 'express';
import { burstAccept, lazyContent } from '@lazy-content/express';
import { startTrace } from './trace.mjs';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    'origin-port': { type: 'string' },
    size: { type: 'string' },
    digest: { type: 'string' },
    port: { type: 'string' },
    'warm-size': { type: 'string' },
    inline: { type: 'boolean' },
    acceptors: { type: 'string' },
    trace: { type: 'string' },
  },
});
const fail = (message) => {
  process.stderr.write(`lazy-express: ${message}\n`);
  process.exit(2);
};
const dataDir = values['data-dir'] ?? fail('missing --data-dir');
const originPort = Number(values['origin-port'] ?? fail('missing --origin-port'));
const size = Number(values.size ?? fail('missing --size'));
const warmSize = values['warm-size'] === undefined ? undefined : Number(values['warm-size']);

const handler = lazyContent({ dataDir, logger: false, ...(values.inline ? { streamer: { inline: true } } : {}) });
const catalog = await handler.lazyContent.catalog();
await catalog.addRemote({ name: 'origin' });
await catalog.addEntries([
  {
    path: `bench/file-${size}.bin`,
    remote: 'origin',
    url: `http://127.0.0.1:${originPort}/file-${size}.bin`,
    size,
    ...(values.digest ? { digest: values.digest } : {}),
  },
  // The warm-up file (bench/fanout.mjs fetches it once before the measured run), without a digest.
  ...(warmSize === undefined
    ? []
    : [{ path: `bench/file-${warmSize}.bin`, remote: 'origin', url: `http://127.0.0.1:${originPort}/file-${warmSize}.bin`, size: warmSize }]),
]);

const app = express();
app.use(handler);
const server = createServer(app);
server.on('error', (err) => fail(`listen failed: ${err.message}`));
const trace = values.trace ? startTrace(server, handler.lazyContent.fills, `file-${size}.bin`) : null;
server.listen(Number(values.port ?? 0), '127.0.0.1', () => {
  const started = performance.now();
  burstAccept(server, { acceptors: Number(values.acceptors ?? 16) }).then(
    () => {
      trace?.mark('burst-accept', { ms: performance.now() - started });
      process.stdout.write(`ready ${server.address().port}\n`);
    },
    (err) => fail(`burstAccept failed: ${err.message}`),
  );
});

if (trace) process.once('exit', () => trace.write(values.trace));
const stop = () => {
  setTimeout(() => process.exit(0), 3000).unref();
  server.closeAllConnections();
  server.close();
  handler.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
