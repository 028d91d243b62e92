import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { lazyContent, type LazyContentHandler } from '@lazy-content/express';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from './helpers/http.js';
import { POSTGRES_URL, postgresAvailable, postgresSchema } from './helpers/services.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

/** Asks until the answer is `status` (the database pool reconnects on its own); bounded to `tries` requests. */
async function eventually(url: string, p: string, status: number, tries = 50): Promise<number> {
  let last = 0;
  for (let i = 0; i < tries; i++) {
    last = (await request(url, p)).status;
    if (last === status) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  return last;
}

describe('the catalog database goes away and comes back (PostgreSQL)', () => {
  let available = false;
  let schema: Awaited<ReturnType<typeof postgresSchema>>;
  let proxy: TcpProxy;
  let dir: string;
  const servers: Server[] = [];
  const handlers: LazyContentHandler[] = [];

  async function app(): Promise<string> {
    const proxied = new URL(schema.url);
    proxied.port = String(proxy.port);
    const handler = lazyContent({
      root: path.join(dir, 'content'),
      dataDir: path.join(dir, 'data'),
      logger: false,
      // Long enough that the test never depends on how fast it runs.
      catalog: { database: proxied.toString(), lookupCacheMs: 60_000 },
    });
    handlers.push(handler);
    const server = createServer(express().use(handler));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  beforeAll(async () => {
    available = await postgresAvailable();
    if (!available) return;
    schema = await postgresSchema('outage');
    const target = new URL(POSTGRES_URL);
    proxy = new TcpProxy(target.hostname, Number(target.port));
    await proxy.start();
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-outage-'));
    await fsp.mkdir(path.join(dir, 'content'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'content', 'saved.txt'), 'saved');
  });
  afterAll(async () => {
    if (!available) return;
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await proxy.stop();
    await Promise.all(handlers.map((h) => h.close()));
    await schema.drop();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('answers 503 with Retry-After while the database is away, keeps serving saved files, and recovers', async (ctx) => {
    if (!available) ctx.skip();
    const url = await app();
    const catalog = await handlers[0]!.lazyContent.catalog();
    await catalog.addRemote({ name: 'up' });
    await catalog.addEntries([
      { path: 'lazy.bin', remote: 'up', url: 'http://127.0.0.1:9/lazy.bin' },
      { path: 'other.bin', remote: 'up', url: 'http://127.0.0.1:9/other.bin' },
    ]);
    expect((await request(url, '/content/lazy.bin')).status).toBe(302);

    await proxy.stop();
    // What was looked up in the last catalog.lookupCacheMs is still known; anything else needs the database.
    expect((await request(url, '/content/lazy.bin')).status).toBe(302);
    const down = await request(url, '/content/other.bin');
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBe('5');
    expect(down.body.toString()).not.toMatch(/ECONN|postgres|127\.0\.0\.1|stack/i);
    expect((await request(url, '/content/saved.txt')).status).toBe(200);

    await proxy.start();
    expect(await eventually(url, '/content/other.bin', 302)).toBe(302);
  });

  it('starts while the database is away: 503 until it is reachable, then works', async (ctx) => {
    if (!available) ctx.skip();
    await proxy.stop();
    const url = await app();
    const down = await request(url, '/content/lazy.bin');
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBe('5');
    await proxy.start();
    expect(await eventually(url, '/content/lazy.bin', 302)).toBe(302);
  });
});
