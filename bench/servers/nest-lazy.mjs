// NestJS (platform-express) + LazyContentModule.forRoot, files of ROOT at /content/.
// Plain JS: the module is declared by calling the decorator as a function (no decorator metadata needed).
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LazyContentModule } from '@lazy-content/nestjs';
import { exitOnSignal, fail, ready, serverArgs } from './common.mjs';

const args = serverArgs();

class AppModule {}
Module({ imports: [LazyContentModule.forRoot({ prefix: '/content/', root: args.root, logger: false })] })(AppModule);

const app = await NestFactory.create(AppModule, { logger: false });
try {
  await app.listen(args.port, args.host);
} catch (err) {
  fail(`listen failed: ${err.message}`);
}
ready(app.getHttpServer().address().port);
exitOnSignal(() => app.close());
