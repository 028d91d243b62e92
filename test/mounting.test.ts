import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lazyContent as expressLazyContent } from '@lazy-content/express';
import { lazyContent as koaLazyContent } from '@lazy-content/koa';
import { createLazyContent } from '@lazy-content/core';
import express from 'express';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { savedFolder } from './conformance/suite.js';
import { request } from './helpers/http.js';

let folder: Awaited<ReturnType<typeof savedFolder>>;
const servers: Server[] = [];
beforeAll(async () => {
  folder = await savedFolder();
});
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await folder.remove();
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('mounting', () => {
  it('Express: the prefix is matched on the URL the client sent, even under app.use(path)', async () => {
    const app = express();
    app.use('/content', expressLazyContent({ root: folder.root, dataDir: folder.dataDir, logger: false }));
    const url = await serve(app);
    expect((await request(url, '/content/small.txt')).status).toBe(200);
  });

  it('Express and Koa share one core instance when given one', async () => {
    const core = createLazyContent({ root: folder.root, dataDir: folder.dataDir, logger: false });
    const e = express();
    const handler = expressLazyContent(core);
    e.use(handler);
    const k = new Koa();
    k.use(koaLazyContent(core));
    const [eu, ku] = [await serve(e), await serve(k.callback())];
    expect(handler.lazyContent).toBe(core);
    const [a, b] = [await request(eu, '/content/small.txt'), await request(ku, '/content/small.txt')];
    expect(a.headers.etag).toBe(b.headers.etag);
    await core.close();
    expect((await request(eu, '/content/small.txt')).status).toBe(503);
  });

  it('Koa: a middleware before lazy-content still runs, and its response headers are kept off our answer', async () => {
    const k = new Koa();
    const seen: string[] = [];
    k.use(async (ctx, next) => {
      seen.push(ctx.path);
      await next();
    });
    k.use(koaLazyContent({ root: folder.root, dataDir: folder.dataDir, logger: false }));
    const url = await serve(k.callback());
    const r = await request(url, '/content/big.bin', { headers: { range: 'bytes=0-99' } });
    expect(r.status).toBe(206);
    expect(r.body.equals(folder.files['big.bin']!.subarray(0, 100))).toBe(true);
    expect(seen).toEqual(['/content/big.bin']);
  });
});
