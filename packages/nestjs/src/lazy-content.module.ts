import { Inject, type MiddlewareConsumer, Module, type NestModule, RequestMethod } from '@nestjs/common';
import { LazyContentMiddleware } from './lazy-content.middleware.js';
import { ConfigurableModuleClass } from './lazy-content.module-definition.js';
import { LazyContentService } from './lazy-content.service.js';

/** Characters that mean something in a Nest (path-to-regexp) route and must be escaped in a literal prefix. */
const ROUTE_SPECIAL = /[()[\]?+!:*{}\\]/g;

/**
 * Serves lazy content below the configured prefix of a Nest application, and the streamer endpoint below
 * the streamer prefix.
 *
 * ```ts
 * @Module({ imports: [LazyContentModule.forRoot({ prefix: '/content/', root: '/srv/content' })] })
 * export class AppModule {}
 * ```
 */
@Module({
  providers: [LazyContentService, LazyContentMiddleware],
  exports: [LazyContentService],
})
export class LazyContentModule extends ConfigurableModuleClass implements NestModule {
  constructor(@Inject(LazyContentService) private readonly service: LazyContentService) {
    super();
  }

  configure(consumer: MiddlewareConsumer): void {
    const { options } = this.service.core;
    const prefixes = [
      ...(options.roles.includes('content') ? [options.prefix] : []),
      ...(options.roles.includes('streamer') ? [options.streamer.prefix] : []),
    ];
    const routes = prefixes.flatMap((p) => {
      const literal = p.replace(ROUTE_SPECIAL, (c) => `\\${c}`);
      return [
        { path: `${literal}{*path}`, method: RequestMethod.ALL },
        { path: literal.slice(0, -1) || '/', method: RequestMethod.ALL },
      ];
    });
    consumer.apply(LazyContentMiddleware).forRoutes(...routes);
  }
}
