// Analysis only (not in the main table): Koa 3 answering every request with one fixed 4 KiB buffer, no file
// system at all: the framework's own ceiling for a small response.
import { createServer } from 'node:http';
import Koa from 'koa';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const body = Buffer.alloc(4096, 0x61);
const app = new Koa();
app.use((ctx) => {
  ctx.type = 'application/octet-stream';
  ctx.body = body;
});
const server = listen(createServer(app.callback()), args);
exitOnSignal(async () => server.close());
