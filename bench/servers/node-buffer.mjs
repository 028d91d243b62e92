// Analysis only (not in the main table): bare node:http answering every request with one fixed 4 KiB
// buffer: the ceiling of Node.js itself on this machine.
import { createServer } from 'node:http';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const body = Buffer.alloc(4096, 0x61);
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
});
listen(server, args);
exitOnSignal(async () => server.close());
