// Analysis only (not in the main table): NestJS (platform-express) with a middleware bound to
// /content/{*path} that answers every request with one fixed 4 KiB buffer: Nest's own ceiling for a small
// response through the same middleware route LazyContentModule uses.
import 'reflect-metadata';
import { Module, RequestMethod } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { exitOnSignal, fail, ready, serverArgs } from './common.mjs';

const args = serverArgs();
const body = Buffer.alloc(4096, 0x61);

class AppModule {
  configure(consumer) {
    consumer
      .apply((req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
      })
      .forRoutes({ path: '/content/{*path}', method: RequestMethod.ALL });
  }
}
Module({})(AppModule);

const app = await NestFactory.create(AppModule, { logger: false });
try {
  await app.listen(args.port, args.host);
} catch (err) {
  fail(`listen failed: ${err.message}`);
}
ready(app.getHttpServer().address().port);
exitOnSignal(() => app.close());
