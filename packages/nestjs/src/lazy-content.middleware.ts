import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import { toContentRequest, writeOutcome } from '@lazy-content/core';
import { LazyContentService } from './lazy-content.service.js';

/**
 * Nest middleware over node:http types only, so that it runs on the Express and on the Fastify platform
 * (both hand middleware the raw or a derived `IncomingMessage`).
 */
@Injectable()
export class LazyContentMiddleware implements NestMiddleware<IncomingMessage, ServerResponse> {
  constructor(@Inject(LazyContentService) private readonly service: LazyContentService) {}

  use(req: IncomingMessage & { originalUrl?: string }, res: ServerResponse, next: (error?: unknown) => void): void {
    this.service.core.handle(toContentRequest(req, req.originalUrl)).then((outcome) => {
      if (outcome.kind === 'pass') next();
      else void writeOutcome(res, outcome);
    }, next);
  }
}
