// A NestJS app with a controller of its own and lazy-content below /content/, in plain JavaScript: the
// decorators are applied as functions, which is what TypeScript's `@Decorator` syntax compiles to.
// From the repository root, after `npm ci && npm run build`:
//
//   node examples/nestjs/server.mjs
//   UPSTREAM_URL=http://127.0.0.1:8081/file/ node examples/nestjs/server.mjs   # catalog a Pulp file repository
//
// Environment: PORT (8080; 0 picks a free port), HOST (127.0.0.1), DATA_DIR (./.lazy-content), UPSTREAM_URL.
import process from 'node:process';
import { importRepository } from '@lazy-content/core';
import { Controller, Get, Header, Inject, Module, ServiceUnavailableException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { burstAccept, LazyContentModule, LazyContentService } from '@lazy-content/nestjs';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const dataDir = process.env.DATA_DIR ?? './.lazy-content';
const upstreamUrl = process.env.UPSTREAM_URL;
/** The remote's name, and the folder below /content/ where its files appear. */
const REPOSITORY = 'demo-file';

/** `@decorator` on a method, applied by hand. */
function decorate(cls, method, ...decorators) {
  const descriptor = Object.getOwnPropertyDescriptor(cls.prototype, method);
  for (const decorator of decorators) decorator(cls.prototype, method, descriptor);
}

// @Controller()
class AppController {
  // constructor(@Inject(LazyContentService) lazyContent)
  constructor(lazyContent) {
    this.lazyContent = lazyContent;
  }

  // @Get() @Header('Content-Type', 'text/plain; charset=utf-8')
  index() {
    return `A NestJS app. Content lives below /content/${upstreamUrl ? `; ${upstreamUrl} is at /content/${REPOSITORY}/` : ''}.\n`;
  }

  // @Get('health')
  async health() {
    try {
      await (await this.lazyContent.catalog()).listRemotes();
      return { status: 'ok' };
    } catch {
      throw new ServiceUnavailableException({ status: 'catalog unavailable' });
    }
  }
}
Controller()(AppController);
Inject(LazyContentService)(AppController, undefined, 0);
decorate(AppController, 'index', Get(), Header('Content-Type', 'text/plain; charset=utf-8'));
decorate(AppController, 'health', Get('health'));

// @Module({ imports: [LazyContentModule.forRoot({...})], controllers: [AppController] })
class AppModule {}
Module({ imports: [LazyContentModule.forRoot({ prefix: '/content/', dataDir })], controllers: [AppController] })(AppModule);

/** Catalogs the Pulp file repository at `repoUrl` below /content/demo-file/: its files are fetched on first use. */
async function importDemoRepository(lc, repoUrl) {
  const result = await importRepository(lc, { url: repoUrl, type: 'file', prefix: `${REPOSITORY}/`, remote: REPOSITORY });
  return result.total;
}

// forceCloseConnections: app.close() also ends idle keep-alive connections, so that the process can exit.
const app = await NestFactory.create(AppModule, { forceCloseConnections: true });
try {
  if (upstreamUrl) {
    const n = await importDemoRepository(app.get(LazyContentService).core, upstreamUrl);
    console.log(`cataloged ${n} files of ${upstreamUrl} below /content/${REPOSITORY}/`);
  }
  await app.listen(port, host);
  // Up to 17 new connections per turn of the event loop instead of 1 (docs/streaming.md).
  await burstAccept(app.getHttpServer());
} catch (err) {
  console.error(upstreamUrl ? `could not start with ${upstreamUrl}: ${err.message}` : `could not start: ${err.message}`);
  await app.close();
  process.exit(1);
}
console.log(`listening on http://${host.includes(':') ? `[${host}]` : host}:${app.getHttpServer().address().port}`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => void app.close());
}
