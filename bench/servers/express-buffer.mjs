// Analysis only (not in the main table): Express 5 answering every GET below /content/ with one fixed
// 4 KiB buffer, no file system at all: the framework's own ceiling for a small response.
import { createServer } from 'node:http';
import express from 'express';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const body = Buffer.alloc(4096, 0x61);
const app = express();
app.use('/content', (req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
  res.end(body);
});
const server = listen(createServer(app), args);
exitOnSignal(async () => server.close());
