// An Express app with its own routes and lazy-content below /content/.
// Run from the repository root after `npm ci && npm run build`:  node examples/express/server.mjs
import express from 'express';
import { lazyContent } from '@lazy-content/express';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const dataDir = process.env.DATA_DIR ?? './.lazy-content';

const app = express();
app.get('/', (_req, res) => {
  res.type('text').send('This is the app. Content lives below /content/.\n');
});

const content = lazyContent({ prefix: '/content/', dataDir });
app.use(content);

const server = app.listen(port, host, () => {
  console.log(`Express app with lazy-content on http://${host}:${port}/ (content folder: ${content.lazyContent.options.root})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    content.close().finally(() => process.exit(0));
  });
}
