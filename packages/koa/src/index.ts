import { createLazyContent, LazyContent, type LazyContentOptions, toContentRequest, writeOutcome } from '@lazy-content/core';
import type { Middleware } from 'koa';

export type { LazyContentOptions } from '@lazy-content/core';
export { burstAccept, type BurstAccept, type BurstAcceptOptions } from '@lazy-content/core';

/** A Koa middleware that also exposes its lazy-content instance. */
export interface LazyContentMiddleware extends Middleware {
  /** The core instance behind this middleware (catalog, queue and cache APIs). */
  readonly lazyContent: LazyContent;
  /** Releases every resource the instance holds. */
  close(): Promise<void>;
}

/**
 * Koa middleware that serves lazy content below `options.prefix` and awaits `next()` for everything else.
 * When it answers, it sets `ctx.respond = false` and writes the response itself.
 *
 * ```ts
 * app.use(lazyContent({ prefix: '/content/', root: '/srv/content' }));
 * ```
 */
export function lazyContent(options?: LazyContentOptions | LazyContent): LazyContentMiddleware {
  const core = options instanceof LazyContent ? options : createLazyContent(options);
  const middleware: Middleware = async (ctx, next) => {
    const outcome = await core.handle(toContentRequest(ctx.req, ctx.originalUrl));
    if (outcome.kind === 'pass') return next();
    ctx.respond = false;
    await writeOutcome(ctx.res, outcome);
  };
  return Object.assign(middleware, { lazyContent: core, close: () => core.close() });
}
