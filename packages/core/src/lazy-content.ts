import { LazyContentError } from './errors.js';
import { errorOutcome } from './http/respond.js';
import { fileOutcome, planResponse, type ServeSettings } from './http/serve-file.js';
import type { Logger } from './logger.js';
import { type LazyContentOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { type ContentRequest, type Outcome, PASS } from './outcome.js';
import { normalizePath, stripPrefix } from './path.js';
import type { ContentStore } from './store/content-store.js';
import { FileMetaCache, type FileMeta } from './store/file-meta-cache.js';
import { FsContentStore } from './store/fs-store.js';

const ALLOW = 'GET, HEAD';

/**
 * One lazy-content instance: the whole pipeline behind a single `handle(request) → Outcome` call. Adapters
 * create one, call `handle` for each request, and write the outcome with `writeOutcome`.
 */
export class LazyContent {
  readonly options: ResolvedOptions;
  readonly store: ContentStore;
  readonly logger: Logger;
  private readonly files: FileMetaCache;
  private readonly serveSettings: ServeSettings;
  private closed = false;

  constructor(options?: LazyContentOptions) {
    this.options = resolveOptions(options);
    this.logger = this.options.logger;
    this.store = this.options.store ?? new FsContentStore(this.options.root);
    const s = this.options.serving;
    this.files = new FileMetaCache(this.store, {
      ttlMs: s.metadataTtlMs,
      maxEntries: s.metadataEntries,
      memoryBytes: s.memoryCacheBytes,
      memoryFileBytes: s.memoryCacheFileBytes,
    });
    this.serveSettings = { cacheControl: this.options.cacheControl, maxRanges: this.options.maxRanges };
  }

  /** The URL prefix this instance serves, with a trailing slash. */
  get prefix(): string {
    return this.options.prefix;
  }

  /**
   * Decides what to do with a request. Never rejects: every failure becomes an `error` outcome, and failures
   * that are not the client's are logged.
   */
  async handle(req: ContentRequest): Promise<Outcome> {
    const rest = stripPrefix(req.url, this.options.prefix);
    if (rest === null) return PASS;
    try {
      if (this.closed) throw new LazyContentError('UNAVAILABLE', 'Service is shutting down', { headers: { 'retry-after': '5' } });
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        if (this.options.otherMethods === 'pass') return PASS;
        throw new LazyContentError('METHOD_NOT_ALLOWED', 'Method not allowed', { headers: { allow: ALLOW } });
      }
      const path = normalizePath(rest, this.options.maxPathLength);
      if (path.directory) return this.notFound();
      const meta = await this.files.get(path.key);
      if (!meta) return this.notFound();
      return await this.serveSaved(req, meta);
    } catch (err) {
      const outcome = errorOutcome(err);
      if (outcome.status >= 500) this.logger.error({ err, url: req.url }, 'request failed');
      return outcome;
    }
  }

  /** Forgets cached metadata for `key`, after a change made behind the store's back. */
  invalidate(key: string): void {
    this.files.invalidate(key);
  }

  /** Releases every resource; later requests get 503. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.files.clear();
    await this.store.close?.();
  }

  private notFound(): Outcome {
    if (this.options.notFound === 'pass') return PASS;
    return errorOutcome(new LazyContentError('NOT_FOUND', 'Not found'));
  }

  private async serveSaved(req: ContentRequest, first: FileMeta): Promise<Outcome> {
    let meta = first;
    // At most twice: once with cached metadata, once more if the file changed between the stat and the open.
    for (let attempt = 0; ; attempt++) {
      const plan = planResponse(req.method, req.headers, meta, this.serveSettings);
      if (plan.status === 304 || req.method === 'HEAD' || meta.info.size === 0) {
        return fileOutcome(plan, meta, this.serveSettings, null);
      }
      if (meta.body) return fileOutcome(plan, meta, this.serveSettings, { kind: 'buffer', data: meta.body });
      const file = await this.store.open(meta.key);
      if (!file) {
        this.files.invalidate(meta.key);
        return this.notFound();
      }
      if (file.info.version === meta.info.version || attempt > 0) {
        if (file.info.version !== meta.info.version) meta = this.files.remember(meta.key, file.info);
        return fileOutcome(planResponse(req.method, req.headers, meta, this.serveSettings), meta, this.serveSettings, {
          kind: 'file',
          file,
        });
      }
      await file.close();
      meta = this.files.remember(meta.key, file.info);
    }
  }
}

/** Creates a lazy-content instance. Options are validated here: a mistake throws an `OptionsError` at start-up. */
export function createLazyContent(options?: LazyContentOptions): LazyContent {
  return new LazyContent(options);
}
