// Koa 3 + koa-static over ROOT. koa-mount is not installed, so the folder is served at the site's root:
// the file ROOT/x is at /x (not /content/x). The benchmark asks for /x.
import { createServer } from 'node:http';
import Koa from 'koa';
import serve from 'koa-static';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const app = new Koa();
app.use(serve(args.root));
const server = listen(createServer(app.callback()), args);
exitOnSignal(async () => server.close());
