import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LAZY_CONTENT_OPTIONS, LazyContentModule, LazyContentService } from '@lazy-content/nestjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { savedFolder } from './conformance/suite.js';
import { request } from './helpers/http.js';

let folder: Awaited<ReturnType<typeof savedFolder>>;
beforeAll(async () => {
  folder = await savedFolder();
});
afterAll(() => folder.remove());

const CONFIG = Symbol('CONFIG');

describe('LazyContentModule', () => {
  it('forRootAsync builds options from an injected provider of an imported module', async () => {
    class ConfigModule {}
    Module({ providers: [{ provide: CONFIG, useValue: { contentRoot: folder.root, dataDir: folder.dataDir } }], exports: [CONFIG] })(ConfigModule);

    class AppModule {}
    Module({
      imports: [
        LazyContentModule.forRootAsync({
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: async (config: { contentRoot: string; dataDir: string }) => ({ root: config.contentRoot, dataDir: config.dataDir, prefix: '/files/', logger: false }),
        }),
      ],
    })(AppModule);

    const app = await NestFactory.create(AppModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    const url = `http://127.0.0.1:${((app.getHttpServer() as Server).address() as AddressInfo).port}`;
    try {
      const r = await request(url, '/files/small.txt');
      expect(r.status).toBe(200);
      expect(r.body.equals(folder.files['small.txt']!)).toBe(true);
      expect((await request(url, '/files/../x')).status).toBe(400);
      expect(app.get(LazyContentService).prefix).toBe('/files/');
      expect(app.get(LAZY_CONTENT_OPTIONS)).toMatchObject({ prefix: '/files/' });
    } finally {
      await app.close();
    }
  });

  it('with isGlobal, other modules inject LazyContentService; closing the app closes the core', async () => {
    class Consumer {
      constructor(readonly lazy: LazyContentService) {}
    }
    Injectable()(Consumer);
    Inject(LazyContentService)(Consumer, undefined, 0);
    class FeatureModule {}
    Module({ providers: [Consumer], exports: [Consumer] })(FeatureModule);
    class AppModule {}
    Module({ imports: [LazyContentModule.forRoot({ root: folder.root, dataDir: folder.dataDir, logger: false, isGlobal: true }), FeatureModule] })(AppModule);

    const app = await NestFactory.create(AppModule, { logger: false });
    await app.init();
    const consumer = app.get(Consumer);
    expect(consumer.lazy).toBe(app.get(LazyContentService));
    const core = consumer.lazy.core;
    const catalog = await consumer.lazy.catalog();
    await catalog.addRemote({ name: 'from-nest' });
    expect((await catalog.getRemote('from-nest'))?.name).toBe('from-nest');
    await app.close();
    expect(await core.handle({ method: 'GET', url: '/content/small.txt', headers: {} })).toMatchObject({ status: 503 });
  });

  it('fails at start-up with a message naming a bad option', async () => {
    class AppModule {}
    Module({ imports: [LazyContentModule.forRoot({ prefix: 'no-slash', logger: false })] })(AppModule);
    await expect(NestFactory.create(AppModule, { logger: false, abortOnError: false })).rejects.toThrow(/option "prefix"/);
  });
});
