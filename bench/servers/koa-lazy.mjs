// Koa 3 + @lazy-content/koa, files of ROOT at /content/.
import { createServer } from 'node:http';
import Koa from 'koa';
import { lazyContent } from '@lazy-content/koa';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const middleware = lazyContent({ prefix: '/content/', root: args.root, logger: false });
const app = new Koa();
app.use(middleware);
const server = listen(createServer(app.callback()), args);
exitOnSignal(async () => {
  server.close();
  await middleware.close();
});
