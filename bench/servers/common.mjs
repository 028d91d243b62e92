// Shared start-up of the benchmark servers: port and root from argv or env, "ready <port>" once listening.
//
//   node bench/servers/<kind>.mjs [--port N] [--root DIR] [--host H]
//   PORT=N ROOT=DIR node bench/servers/<kind>.mjs
//
// Port 0 (the default) lets the kernel choose; the chosen port is printed after "ready".
import { parseArgs } from 'node:util';
import * as path from 'node:path';

/** `extra`: more parseArgs options of one server (e.g. `{ protect: { type: 'string' } }`), returned in `values`. */
export function serverArgs(extra = {}) {
  const { values } = parseArgs({
    options: {
      ...extra,
      port: { type: 'string' },
      root: { type: 'string' },
      host: { type: 'string' },
    },
    strict: true,
  });
  const port = Number(values.port ?? process.env.PORT ?? 0);
  const root = values.root ?? process.env.ROOT;
  const host = values.host ?? process.env.HOST ?? '127.0.0.1';
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port: ${values.port ?? process.env.PORT}`);
  if (!root) fail('missing --root DIR (or ROOT=DIR): the folder of files to serve');
  return { port, root: path.resolve(root), host, values };
}

export function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** Listens with a node:http server (or anything with listen/address) and prints "ready <port>". */
export function listen(server, { port, host }) {
  server.on('error', (err) => fail(`listen failed: ${err.message}`));
  server.listen(port, host, () => ready(server.address().port));
  return server;
}

export function ready(port) {
  process.stdout.write(`ready ${port}\n`);
}

/** Ends the process cleanly on SIGTERM/SIGINT (the benchmark kills the whole process group anyway). */
export function exitOnSignal(close = async () => {}) {
  const stop = () => {
    const t = setTimeout(() => process.exit(0), 2000);
    t.unref();
    close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
