export { createLazyContent, LazyContent } from './lazy-content.js';
export { defaults, OptionsError, type LazyContentOptions, type ResolvedOptions, type ServingOptions } from './options.js';
export { errorStatus, isLazyContentError, LazyContentError, statusForCode, type ErrorCode } from './errors.js';
export type {
  ContentRequest,
  DenyOutcome,
  ErrorOutcome,
  FileOutcome,
  Outcome,
  PassOutcome,
  RedirectOutcome,
  ResponseBody,
  ResponseOutcome,
  StreamOutcome,
} from './outcome.js';
export { errorOutcome, toContentRequest, writeOutcome } from './http/respond.js';
export { normalizePath, stripPrefix, type NormalizedPath } from './path.js';
export type { ContentStore, OpenedFile, PutSource, StoredFileInfo } from './store/content-store.js';
export { FsContentStore, TEMP_DIR } from './store/fs-store.js';
export { defaultLogger, silentLogger, type Logger } from './logger.js';
