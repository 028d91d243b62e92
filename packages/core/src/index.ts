export { createLazyContent, LazyContent } from './lazy-content.js';
export {
  defaults,
  OptionsError,
  type CacheOptions,
  type CatalogOptions,
  type SaveOptions,
  type EntitlementOptions,
  type LazyContentOptions,
  type ResolvedOptions,
  type ServingOptions,
  type SigningOptions,
  type StreamerOptions,
} from './options.js';
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
export { burstAccept, burstAcceptDefaults, type BurstAccept, type BurstAcceptOptions } from './http/burst-accept.js';
export { normalizePath, stripPrefix, type NormalizedPath } from './path.js';
export type { ContentStore, OpenedFile, PutOptions, PutSource, StoredFileInfo } from './store/content-store.js';
export { FsContentStore, TEMP_DIR } from './store/fs-store.js';
export { defaultLogger, silentLogger, type Logger } from './logger.js';
export { Catalog, catalogDefaults, catalogKey, remoteDefaults, viewOf, type CatalogLookupOptions } from './catalog/catalog.js';
export { openDatabase as openCatalogDatabase, type DatabaseSettings } from './catalog/database.js';
export { catalogEntities, TABLE as catalogTables } from './catalog/entities.js';
export { catalogMigrations } from './catalog/migrations/index.js';
export { SecretBox } from './catalog/secrets.js';
export * from './catalog/types.js';
export { LINK_PARAMS, StreamerLinks, type StreamerLinkSettings } from './signing/links.js';
export { HmacUrlSigner, RsaUrlSigner, type UrlSigner } from './signing/url-signer.js';
export {
  callbackPolicy,
  deniedError,
  denyMessages,
  EntitlementGuard,
  entitlementGuardDefaults,
  readCertificate,
  rhsmPolicy,
  x509Policy,
  type Allowed,
  type CertificateInput,
  type CheckOptions,
  type Denied,
  type DenyReason,
  type EntitlementCallback,
  type EntitlementGuardOptions,
  type EntitlementPolicy,
  type EntitlementRule,
  type ParsedCertificate,
  type Protection,
  type Verdict,
} from './entitlement/index.js';
export { DiskCache, type CacheRecord, type DiskCacheOptions } from './cache/disk-cache.js';
export { FillEngine, type Acquired } from './streamer/fill-engine.js';
export type { Fill, FillHead, FillSource } from './streamer/fill.js';
export type * from './streamer/events.js';
export type { GrowingFileSource, PositionalFile } from './streamer/growing-file.js';
export type { SaveQueue, SaveQueueListOptions, SaveTask, SaveTaskLease, SaveTaskState } from './save/save-queue.js';
export { DatabaseSaveQueue } from './save/db-save-queue.js';
export { SAVE_MARKER_HEADER, SaveWorker, type SaveWorkerEvents, type SaveWorkerSettings } from './save/save-worker.js';
export type { ImportProgress } from './lazy-content.js';
export { BullMqSaveQueue, type BullMqSaveQueueOptions } from './save/bullmq-save-queue.js';
export {
  importers,
  importRepository,
  importRepositoryDefaults,
  type ImportRepositoryOptions,
  type RepositoryImportProgress,
  type RepositoryImportResult,
  type RepositoryType,
} from './importers/import-repository.js';
export type { Importer, ImporterContext } from './importers/importer.js';
export { MetadataClient, type FetchedFile, type MetadataClientSettings } from './importers/metadata-client.js';
export { fileImporter } from './importers/file.js';
export { yumImporter } from './importers/yum.js';
export { entryPath } from './importers/paths.js';
