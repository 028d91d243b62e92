export { type Acquired, FillEngine, fillEngineDefaults, type FillEngineOptions } from './fill-engine.js';
export { Fill, FillBody, type FillHead, type FillSource, type FillState } from './fill.js';
export type * from './events.js';
export {
  type GrowingFileSource,
  type GrowingFileState,
  GrowingFileReader,
  type GrowingFileReaderOptions,
  LocalGrowingFile,
  type PositionalFile,
} from './growing-file.js';
export { SourceCooldowns } from './cooldown.js';
export { Semaphore } from './semaphore.js';
export type { SourceFailureReason } from './upstream.js';
export {
  type CacheInitReport,
  type CacheRecord,
  CachedFile,
  DiskCache,
  diskCacheDefaults,
  type DiskCacheEvents,
  type DiskCacheOptions,
} from '../cache/disk-cache.js';
