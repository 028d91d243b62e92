// Express 5 + express.static (serve-static) over ROOT, mounted at /content.
import { createServer } from 'node:http';
import express from 'express';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const app = express();
app.use('/content', express.static(args.root));
const server = listen(createServer(app), args);
exitOnSignal(async () => server.close());
