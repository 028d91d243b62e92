// A Koa app with routes of its own and lazy-content below /content/.
// From the repository root, after `npm ci && npm run build`:
//
//   node examples/koa/server.mjs
//   UPSTREAM_URL=http://127.0.0.1:8081/file/ node examples/koa/server.mjs   # catalog a Pulp file repository
//
// Environment: PORT (8080; 0 picks a free port), HOST (127.0.0.1), DATA_DIR (./.lazy-content), UPSTREAM_URL.
import process from 'node:process';
import { importRepository } from '@lazy-content/core';
import Koa from 'koa';
import { burstAccept, lazyContent } from '@lazy-content/koa';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const dataDir = process.env.DATA_DIR ?? './.lazy-content';
const upstreamUrl = process.env.UPSTREAM_URL;
/** The remote's name, and the folder below /content/ where its files appear. */
const REPOSITORY = 'demo-file';

const content = lazyContent({ prefix: '/content/', dataDir });

const app = new Koa();
// The app's own routes (a router such as @koa/router would do the same).
app.use(async (ctx, next) => {
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
  if (ctx.path === '/') {
    ctx.type = 'text';
    ctx.body = `A Koa app. Content lives below /content/${upstreamUrl ? `; ${upstreamUrl} is at /content/${REPOSITORY}/` : ''}.\n`;
  } else if (ctx.path === '/health') {
    try {
      await (await content.lazyContent.catalog()).listRemotes();
      ctx.body = { status: 'ok' };
    } catch {
      ctx.status = 503;
      ctx.body = { status: 'catalog unavailable' };
    }
  } else {
    await next();
  }
});
app.use(content);
// Koa logs every error of a request, including a client that hung up mid-download; those are not worth a line.
const CLIENT_WENT_AWAY = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);
app.on('error', (err) => {
  if (!CLIENT_WENT_AWAY.has(err.code)) console.error(err);
});

/** Catalogs the Pulp file repository at `repoUrl` below /content/demo-file/: its files are fetched on first use. */
async function importDemoRepository(lc, repoUrl) {
  const result = await importRepository(lc, { url: repoUrl, type: 'file', prefix: `${REPOSITORY}/`, remote: REPOSITORY });
  return result.total;
}

if (upstreamUrl) {
  try {
    const n = await importDemoRepository(content.lazyContent, upstreamUrl);
    console.log(`cataloged ${n} files of ${upstreamUrl} below /content/${REPOSITORY}/`);
  } catch (err) {
    console.error(`could not import ${upstreamUrl}: ${err.message}`);
    await content.close();
    process.exit(1);
  }
}

const server = app.listen(port, host);
server.once('error', async (err) => {
  console.error(`could not listen on ${host}:${port}: ${err.message}`);
  await content.close();
  process.exit(1);
});
server.once('listening', async () => {
  // Up to 17 new connections per turn of the event loop instead of 1 (docs/streaming.md).
  await burstAccept(server);
  console.log(`listening on http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    server.close();
    server.closeAllConnections();
    await content.close();
  });
}
