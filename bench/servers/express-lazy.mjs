// Express 5 + @lazy-content/express, files of ROOT at /content/.
import { createServer } from 'node:http';
import express from 'express';
import { lazyContent } from '@lazy-content/express';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const handler = lazyContent({ prefix: '/content/', root: args.root, logger: false });
const app = express();
app.use(handler);
const server = listen(createServer(app), args);
exitOnSignal(async () => {
  server.close();
  await handler.close();
});
