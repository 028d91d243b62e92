import type { AddressInfo } from 'node:net';
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TlsOptions } from 'node:tls';
import { Controller, Get, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { LazyContent, LazyContentOptions } from '@lazy-content/core';
import { lazyContent as expressLazyContent } from '@lazy-content/express';
import { lazyContent as koaLazyContent } from '@lazy-content/koa';
import { LazyContentModule, LazyContentService } from '@lazy-content/nestjs';
import express from 'express';
import Koa from 'koa';

/**
 * A running app of one framework: lazy-content under `options.prefix`, and the app's own routes beside it:
 * `GET /app/hello` and `GET|POST /content/app-owned` (below the default prefix, reached only when
 * lazy-content passes).
 */
export interface AdapterApp {
  url: string;
  /** The core instance behind the adapter (catalog API). */
  core: LazyContent;
  close(): Promise<void>;
}

/** `tls`: serve HTTPS with these options (the app terminates TLS itself, asking for client certificates). */
export type AdapterFactory = (options: LazyContentOptions, tls?: TlsOptions) => Promise<AdapterApp>;

export const APP_HELLO = 'hello from the app';
export const APP_OWNED = 'owned by the app';

function urlOf(server: Server, tls?: TlsOptions): string {
  return `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function serverFor(listener: RequestListener, tls?: TlsOptions): Server {
  return tls ? (createHttpsServer(tls, listener) as unknown as Server) : createServer(listener);
}

function listen(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export const expressApp: AdapterFactory = async (options, tls) => {
  const app = express();
  const handler = expressLazyContent(options);
  app.get('/app/hello', (_req, res) => void res.send(APP_HELLO));
  app.use(handler);
  app.all('/content/app-owned', (_req, res) => void res.send(APP_OWNED));
  const server = serverFor(app, tls);
  await listen(server);
  return {
    url: urlOf(server, tls),
    core: handler.lazyContent,
    close: async () => {
      await closeServer(server);
      await handler.close();
    },
  };
};

export const koaApp: AdapterFactory = async (options, tls) => {
  const app = new Koa();
  const middleware = koaLazyContent(options);
  app.use(async (ctx, next) => {
    if (ctx.path === '/app/hello') ctx.body = APP_HELLO;
    else await next();
  });
  app.use(middleware);
  app.use(async (ctx) => {
    if (ctx.path === '/content/app-owned') ctx.body = APP_OWNED;
  });
  const server = serverFor(app.callback(), tls);
  await listen(server);
  return {
    url: urlOf(server, tls),
    core: middleware.lazyContent,
    close: async () => {
      await closeServer(server);
      await middleware.close();
    },
  };
};

// Decorators applied as functions, so that the test compiler needs no decorator support.
class HelloController {
  hello(): string {
    return APP_HELLO;
  }
}
Controller('app')(HelloController);
Get('hello')(HelloController.prototype, 'hello', Object.getOwnPropertyDescriptor(HelloController.prototype, 'hello')!);

class OwnedController {
  get(): string {
    return APP_OWNED;
  }
  post(): string {
    return APP_OWNED;
  }
}
Controller('content')(OwnedController);
Get('app-owned')(OwnedController.prototype, 'get', Object.getOwnPropertyDescriptor(OwnedController.prototype, 'get')!);
Post('app-owned')(OwnedController.prototype, 'post', Object.getOwnPropertyDescriptor(OwnedController.prototype, 'post')!);

export const nestApp: AdapterFactory = async (options, tls) => {
  class AppModule {}
  Module({ imports: [LazyContentModule.forRoot(options)], controllers: [HelloController, OwnedController] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false, ...(tls ? { httpsOptions: tls } : {}) });
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as Server;
  return { url: urlOf(server, tls), core: app.get(LazyContentService).core, close: () => app.close() };
};

export const adapters: Array<[string, AdapterFactory]> = [
  ['express', expressApp],
  ['koa', koaApp],
  ['nestjs', nestApp],
];
