// An Express app with routes of its own and lazy-content below /content/.
// From the repository root, after `npm ci && npm run build`:
//
//   node examples/express/server.mjs
//   UPSTREAM_URL=http://127.0.0.1:8081/file/ node examples/express/server.mjs   # catalog a Pulp file repository
//
// Environment: PORT (8080; 0 picks a free port), HOST (127.0.0.1), DATA_DIR (./.lazy-content), UPSTREAM_URL.
import process from 'node:process';
import { importRepository } from '@lazy-content/core';
import express from 'express';
import { burstAccept, lazyContent } from '@lazy-content/express';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const dataDir = process.env.DATA_DIR ?? './.lazy-content';
const upstreamUrl = process.env.UPSTREAM_URL;
/** The remote's name, and the folder below /content/ where its files appear. */
const REPOSITORY = 'demo-file';

const content = lazyContent({ prefix: '/content/', dataDir });

const app = express();
app.get('/', (_req, res) => {
  res.type('text').send(`An Express app. Content lives below /content/${upstreamUrl ? `; ${upstreamUrl} is at /content/${REPOSITORY}/` : ''}.\n`);
});
app.get('/health', async (_req, res) => {
  try {
    await (await content.lazyContent.catalog()).listRemotes();
    res.json({ status: 'ok' });
  } catch {
    res.status(503).json({ status: 'catalog unavailable' });
  }
});
app.use(content);

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

const server = app.listen(port, host, async (err) => {
  if (err) {
    console.error(`could not listen on ${host}:${port}: ${err.message}`);
    await content.close();
    process.exit(1);
  }
  // Accept up to 17 connections per turn of the event loop instead of 1: a burst of package managers asking
  // at once is answered together, not one per turn while the first ones are being streamed to.
  await burstAccept(server);
  const { port: actual } = server.address();
  console.log(`listening on http://${host.includes(':') ? `[${host}]` : host}:${actual}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    server.close();
    server.closeAllConnections();
    await content.close();
  });
}
