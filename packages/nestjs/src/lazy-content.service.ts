import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { type Catalog, createLazyContent, type LazyContent, type LazyContentOptions } from '@lazy-content/core';
import { LAZY_CONTENT_OPTIONS } from './lazy-content.module-definition.js';

/** The lazy-content instance of a Nest application, injectable anywhere the module is visible. */
@Injectable()
export class LazyContentService implements OnModuleDestroy {
  /** The core instance: the same API the Express and Koa adapters expose as `.lazyContent`. */
  readonly core: LazyContent;

  constructor(@Inject(LAZY_CONTENT_OPTIONS) options: LazyContentOptions) {
    this.core = createLazyContent(options);
  }

  /** The URL prefix served, with a trailing slash. */
  get prefix(): string {
    return this.core.prefix;
  }

  /** The catalog API (remotes, entries, lookups); opens the database on first use. */
  catalog(): Promise<Catalog> {
    return this.core.catalog();
  }

  async onModuleDestroy(): Promise<void> {
    await this.core.close();
  }
}
