import 'reflect-metadata';
import type { ASYNC_OPTIONS_TYPE, OPTIONS_TYPE } from './lazy-content.module-definition.js';

export { LazyContentModule } from './lazy-content.module.js';
export { LazyContentService } from './lazy-content.service.js';
export { LazyContentMiddleware } from './lazy-content.middleware.js';
export { LAZY_CONTENT_OPTIONS } from './lazy-content.module-definition.js';
export type { LazyContentOptions } from '@lazy-content/core';
export { burstAccept, type BurstAccept, type BurstAcceptOptions } from '@lazy-content/core';

/** What `LazyContentModule.forRoot` takes: lazy-content's options plus `isGlobal`. */
export type LazyContentModuleOptions = typeof OPTIONS_TYPE;
/** What `LazyContentModule.forRootAsync` takes: `useFactory`, `inject`, `imports`, `useClass`, `useExisting`, `isGlobal`. */
export type LazyContentModuleAsyncOptions = typeof ASYNC_OPTIONS_TYPE;
