import { createLazyContent, LazyContent, type LazyContentOptions, toContentRequest, writeOutcome } from '@lazy-content/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

export type { LazyContentOptions } from '@lazy-content/core';
export { burstAccept, type BurstAccept, type BurstAcceptOptions } from '@lazy-content/core';

/** An Express handler that also exposes its lazy-content instance. */
export interface LazyContentHandler extends RequestHandler {
  /** The core instance behind this handler (catalog, queue and cache APIs). */
  readonly lazyContent: LazyContent;
  /** Releases every resource the instance holds. */
  close(): Promise<void>;
}

/**
 * Express middleware that serves lazy content below `options.prefix` and calls `next()` for everything else.
 *
 * ```ts
 * app.use(lazyContent({ prefix: '/content/', root: '/srv/content' }));
 * ```
 *
 * Pass an existing `LazyContent` instead of options to share one instance between apps.
 */
export function lazyContent(options?: LazyContentOptions | LazyContent): LazyContentHandler {
  const core = options instanceof LazyContent ? options : createLazyContent(options);
  const handler = (req: Request, res: Response, next: NextFunction): void => {
    // originalUrl: the prefix is matched against the URL the client sent, wherever the handler is mounted.
    core.handle(toContentRequest(req, req.originalUrl)).then((outcome) => {
      if (outcome.kind === 'pass') next();
      else void writeOutcome(res, outcome);
    }, next);
  };
  return Object.assign(handler, { lazyContent: core, close: () => core.close() });
}
