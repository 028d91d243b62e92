import { Inject, type MiddlewareConsumer, Module, type NestModule, RequestMethod } from '@nestjs/common';
import { LazyContentMiddleware } from './lazy-content.middleware.js';
import { ConfigurableModuleClass } from './lazy-content.module-definition.js';
import { LazyContentService } from './lazy-content.service.js';

/** Characters that mean something in a Nest (path-to-regexp) route and must be escaped in a literal prefix. */
const ROUTE_SPECIAL = /[()[\]?+!:*{}\\]/g;

/**
 * Serves lazy content below the configured prefix of a Nest application.
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
    const prefix = this.service.prefix.replace(ROUTE_SPECIAL, (c) => `\\${c}`);
    consumer
      .apply(LazyContentMiddleware)
      .forRoutes({ path: `${prefix}{*path}`, method: RequestMethod.ALL }, { path: prefix.slice(0, -1) || '/', method: RequestMethod.ALL });
  }
}
