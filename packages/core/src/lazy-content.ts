import { BlockList, isIP } from 'node:net';
import { LRUCache } from 'lru-cache';
import * as path from 'node:path';
import { EntitlementGuard, type EntitlementGuardOptions, type Protection } from './entitlement/guard.js';
import type { Verdict } from './entitlement/verdict.js';
import { DatabaseSaveQueue } from './save/db-save-queue.js';
import type { SaveQueue } from './save/save-queue.js';
import { SAVE_MARKER_HEADER, SaveWorker } from './save/save-worker.js';
import type { CatalogEntryInput, DownloadPolicy } from './catalog/types.js';
import type { DataSource } from 'typeorm';
import { Catalog } from './catalog/catalog.js';
import { openDatabase } from './catalog/database.js';
import { keyFromOption, loadOrCreateKeyFile, SecretBox } from './catalog/secrets.js';
import type { CatalogEntry } from './catalog/types.js';
import { LazyContentError } from './errors.js';
import { errorOutcome } from './http/respond.js';
import { fileOutcome, planResponse, type ServeSettings } from './http/serve-file.js';
import { catalogHeadOutcome, fillOutcome } from './http/serve-stream.js';
import { DiskCache } from './cache/disk-cache.js';
import type { OpenedFile } from './store/content-store.js';
import { FillEngine } from './streamer/fill-engine.js';
import type { FillSource } from './streamer/fill.js';
import type { Logger } from './logger.js';
import { type LazyContentOptions, OptionsError, type ResolvedOptions, resolveOptions } from './options.js';
import { type ContentRequest, type Outcome, PASS } from './outcome.js';
import { normalizePath, stripPrefix } from './path.js';
import type { ContentStore } from './store/content-store.js';
import { FileMetaCache, type FileMeta, metaFor } from './store/file-meta-cache.js';
import { FsContentStore } from './store/fs-store.js';
import { StreamerLinks } from './signing/links.js';
import { HmacUrlSigner, RsaUrlSigner, type UrlSigner } from './signing/url-signer.js';

const ALLOW = 'GET, HEAD';
const RETRY_AFTER_SECONDS = '5';
/** At most one "catalog unavailable" log line per this many ms, so that an outage does not flood the log. */
const OUTAGE_LOG_INTERVAL_MS = 10_000;

/** What needs I/O to set up: opened on first use, and again after a failure (the database may come back). */
interface Services {
  catalog: Catalog;
  links: StreamerLinks;
  dataSource: DataSource;
  ownsDataSource: boolean;
  queue: SaveQueue;
  /** Saves files; also runs in the background when `save.worker` is on. */
  worker: SaveWorker;
}

/** What an import reports, and what `immediate` downloads report as they go. */
export interface ImportProgress {
  entries: number;
  /** Files of `background` remotes scheduled for saving. */
  scheduled: number;
  /** Files of `immediate` remotes downloaded and saved so far, and those that failed. */
  saved: number;
  failed: number;
  /** Files to download for `immediate` remotes. */
  toDownload: number;
}

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
  private readonly configuredSigner: UrlSigner | null;
  private services: Promise<Services> | undefined;
  /** Downloads, coalesced per file, into the disk cache. Its events are for logs and metrics. */
  readonly fills: FillEngine;
  private cacheReady: Promise<void> | undefined;
  /** Access control by client certificate; null when no path is protected. */
  readonly guard: EntitlementGuard | null;
  private readonly trustedProxies: BlockList;
  /** Whether an address is a trusted proxy, by address: the same few proxies ask again and again. */
  private readonly proxyVerdicts = new LRUCache<string, boolean>({ max: 1024 });
  private readonly certificateHeader: string;
  /** Paths whose running fill was started by a save worker's own request: its completion schedules nothing. */
  private readonly unscheduled = new Set<string>();
  private lastOutageLog = 0;
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
    this.configuredSigner = this.signerFromOptions();
    const e = this.options.entitlement;
    const { header, trustedProxies, ...guardOptions } = e ?? { header: 'x-client-cert', trustedProxies: [] };
    this.guard = e ? new EntitlementGuard(guardOptions as EntitlementGuardOptions) : null;
    this.certificateHeader = header;
    this.trustedProxies = blockListOf(trustedProxies);
    const cache = new DiskCache({
      dir: this.options.cache.dir,
      maxBytes: this.options.cache.maxBytes,
      index: this.options.cache.index,
      logger: this.logger,
    });
    this.fills = new FillEngine({
      cache,
      logger: this.logger,
      cooldownMs: this.options.streamer.cooldownMs,
      holdbackBytes: this.options.streamer.holdbackBytes,
      memoryWindowBytes: this.options.streamer.memoryWindowBytes,
    });
    this.fills.on('fill:completed', (e) => {
      this.logger.info({ key: e.key, size: e.record.size, ms: e.durationMs }, 'fill completed');
      void this.scheduleSave(e.key, e.remoteId);
    });
    this.fills.on('fill:failed', (e) => {
      this.unscheduled.delete(e.key);
      this.logger.warn({ key: e.key, reason: e.reason }, 'fill failed');
    });
  }

  /** RSA keys and custom signers are checked here, at start-up; an HMAC secret may need the data folder. */
  private signerFromOptions(): UrlSigner | null {
    const s = this.options.signing;
    let signer: UrlSigner | null = s.signer ?? null;
    if (!signer && s.algorithm === 'rsa-sha256') {
      try {
        signer = new RsaUrlSigner({ privateKey: s.privateKey, publicKey: s.publicKey });
      } catch (err) {
        throw new OptionsError(`lazy-content: invalid options:\n  - option "signing" RSA key: ${(err as Error).message}`);
      }
    }
    if (!signer && s.secret !== undefined) {
      const secret = Buffer.isBuffer(s.secret) ? s.secret : Buffer.from(s.secret, 'utf8');
      if (secret.length < 32) throw new OptionsError('lazy-content: invalid options:\n  - option "signing.secret" must be at least 32 bytes');
      signer = new HmacUrlSigner(secret);
    }
    if (signer && !signer.canSign && this.options.roles.includes('content')) {
      throw new OptionsError(
        'lazy-content: invalid options:\n  - option "signing" holds only a public key, which cannot sign links: give "privateKey" on the content side, or set roles to ["streamer"]',
      );
    }
    return signer;
  }

  /** Opens the catalog and loads the keys. Resolves once; after a failure the next call tries again. */
  ready(): Promise<Services> {
    if (this.closed) return Promise.reject(new LazyContentError('UNAVAILABLE', 'Service is shutting down'));
    this.services ??= this.openServices().catch((err: unknown) => {
      this.services = undefined;
      throw err;
    });
    return this.services;
  }

  private async openServices(): Promise<Services> {
    const { dataDir, catalog: c, signing, streamer } = this.options;
    const key = c.encryptionKey !== undefined
      ? keyFromOption(c.encryptionKey, 32, 'catalog.encryptionKey')
      : await loadOrCreateKeyFile(path.join(dataDir, 'catalog.key'), 32);
    const { dataSource, owned } = await openDatabase({
      url: c.database,
      dataSource: c.dataSource,
      runMigrations: c.runMigrations ?? c.dataSource === undefined,
      dataDir,
    });
    const signer = this.configuredSigner ?? new HmacUrlSigner(await loadOrCreateKeyFile(path.join(dataDir, 'signing.key'), 32));
    const links = new StreamerLinks(signer, {
      prefix: streamer.prefix,
      publicUrl: streamer.publicUrl,
      expiresInSeconds: signing.expiresInSeconds,
      bindClientAddress: signing.bindClientAddress,
    });
    const catalog = new Catalog(dataSource, new SecretBox(key), { lookupCacheMs: this.options.catalog.lookupCacheMs });
    const save = this.options.save;
    const queue = save.queue ?? new DatabaseSaveQueue(dataSource);
    const worker = new SaveWorker(
      {
        queue,
        catalog,
        store: this.store,
        fills: this.fills,
        links: save.streamerUrl
          ? new StreamerLinks(signer, { ...links.settings, publicUrl: save.streamerUrl })
          : undefined,
        logger: this.logger,
        onSaved: (path) => this.files.invalidate(path),
      },
      save,
    );
    const services = { catalog, links, dataSource, ownsDataSource: owned, queue, worker };
    if (this.closed) {
      if (owned) await dataSource.destroy();
      throw new LazyContentError('UNAVAILABLE', 'Service is shutting down');
    }
    if (save.worker) {
      // The worker reads from and writes past the disk cache: it must be set up (crash leftovers removed) first.
      await this.streamerReady();
      worker.start();
    }
    return services;
  }

  /** The catalog API: remotes, entries, lookups. Opens the database on first use. */
  async catalog(): Promise<Catalog> {
    return (await this.ready()).catalog;
  }

  /** The save queue (list and retry tasks). Opens the database on first use. */
  async saveQueue(): Promise<SaveQueue> {
    return (await this.ready()).queue;
  }

  /** The save worker of this process (its events: `save:completed`, `save:failed`). */
  async saveWorker(): Promise<SaveWorker> {
    return (await this.ready()).worker;
  }

  /**
   * Opens the catalog and starts the save worker now, rather than on the first request: for a process
   * that must resume pending saves after a restart, or that only runs the worker.
   */
  async start(): Promise<void> {
    await this.ready();
  }

  /**
   * Adds entries to the catalog and applies each remote's policy: `background` schedules a save of every
   * file not saved yet; `immediate` downloads and saves every such file now, with the same verification,
   * reporting progress; `on_demand` and `streamed` wait for clients.
   */
  async importEntries(
    entries: Iterable<CatalogEntryInput> | AsyncIterable<CatalogEntryInput>,
    options: { onProgress?: (progress: ImportProgress) => void; concurrency?: number } = {},
  ): Promise<ImportProgress> {
    const { catalog, queue, worker } = await this.ready();
    const byRemote = new Map<string, DownloadPolicy>();
    for (const r of await catalog.listRemotes()) byRemote.set(r.name, r.policy);
    const toSchedule: string[] = [];
    const toDownload: string[] = [];
    async function* collect(): AsyncGenerator<CatalogEntryInput> {
      for await (const e of entries) {
        const policy = byRemote.get(e.remote);
        if (e.maxAgeMs != null) {
          // Served fresh: never saved.
        } else if (policy === 'background') toSchedule.push(e.path);
        else if (policy === 'immediate') toDownload.push(e.path);
        yield e;
      }
    }
    const progress: ImportProgress = { entries: 0, scheduled: 0, saved: 0, failed: 0, toDownload: 0 };
    progress.entries = await catalog.addEntries(collect());
    const unsaved = async (path: string) => {
      const key = catalogKeyOf(path);
      return (await this.store.stat(key)) === null ? key : null;
    };
    for (const path of toSchedule) {
      const key = await unsaved(path);
      if (key && (await queue.schedule(key))) progress.scheduled++;
    }
    if (progress.scheduled > 0) worker.wake();
    const downloads = (await Promise.all(toDownload.map(unsaved))).filter((k): k is string => k !== null);
    progress.toDownload = downloads.length;
    options.onProgress?.({ ...progress });
    let next = 0;
    const lane = async () => {
      while (next < downloads.length) {
        const key = downloads[next++]!;
        try {
          await worker.save(key);
          progress.saved++;
        } catch (err) {
          progress.failed++;
          this.logger.warn({ path: key, err: (err as Error).message }, 'immediate download failed');
        }
        options.onProgress?.({ ...progress });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? this.options.save.concurrency) }, lane));
    return progress;
  }

  /** After a fill: a save task, unless the remote's policy is `streamed` or a save worker asked for the file. */
  private async scheduleSave(key: string, remoteId: number): Promise<void> {
    if (this.unscheduled.delete(key)) return;
    try {
      const { catalog, queue, worker } = await this.ready();
      const remote = await catalog.remoteById(remoteId);
      if (!remote || remote.policy === 'streamed') return;
      // Files served fresh are never saved: they change upstream under the same path.
      if ((await catalog.lookup(key)).some((e) => e.maxAgeMs !== null)) return;
      if (await queue.schedule(key)) worker.wake();
    } catch (err) {
      // The file stays in the cache and is served from there; the next fill of it schedules again.
      this.logger.error({ err, key }, 'could not schedule a save');
    }
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
    const roles = this.options.roles;
    const streamRest = roles.includes('streamer') ? stripPrefix(req.url, this.options.streamer.prefix) : null;
    const contentRest = streamRest === null && roles.includes('content') ? stripPrefix(req.url, this.options.prefix) : null;
    if (streamRest === null && contentRest === null) return PASS;
    // Pending saves resume after a restart without waiting for a lazy request to open the catalog.
    if (!this.services && !this.closed && this.options.save.worker) this.ready().catch(() => undefined);
    try {
      if (this.closed) throw new LazyContentError('UNAVAILABLE', 'Service is shutting down', { headers: { 'retry-after': RETRY_AFTER_SECONDS } });
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        if (this.options.otherMethods === 'pass' && contentRest !== null) return PASS;
        throw new LazyContentError('METHOD_NOT_ALLOWED', 'Method not allowed', { headers: { allow: ALLOW } });
      }
      return streamRest !== null ? await this.handleStreamer(req, streamRest) : await this.handleContent(req, contentRest!);
    } catch (err) {
      const outcome = errorOutcome(err);
      // Outages and upstream failures are logged where they are understood (throttled, with their cause).
      if (outcome.status >= 500 && !['UNAVAILABLE', 'UPSTREAM_FAILED', 'UPSTREAM_TIMEOUT'].includes(outcome.code)) {
        this.logger.error({ err, url: req.url }, 'request failed');
      }
      return outcome;
    }
  }

  /** Seed steps 2 to 6: saved → served; in the catalog → redirect to the streamer; neither → 404 or pass. */
  private async handleContent(req: ContentRequest, rest: string): Promise<Outcome> {
    const { key, directory } = normalizePath(rest, this.options.maxPathLength);
    const protection = this.guard?.protectionOf(`/${key}`);
    const refused = protection ? await this.entitlementRefusal(req, protection, key) : null;
    if (refused) return refused;
    if (directory) return this.notFound();
    const outcome = await this.contentOf(req, key);
    return protection ? privateOutcome(outcome) : outcome;
  }

  private async contentOf(req: ContentRequest, key: string): Promise<Outcome> {
    const meta = await this.files.get(key);
    if (meta) return this.serveSaved(req, meta);
    const { entries, links } = await this.lookup(key);
    if (entries.length === 0) return this.notFound();
    if (this.options.streamer.inline) return this.stream(req, key, entries);
    return { kind: 'redirect', location: links.create(key, req.remoteAddress) };
  }

  /** Seed step 7 onwards: the signature is checked before anything else is looked at. */
  private async handleStreamer(req: ContentRequest, rest: string): Promise<Outcome> {
    const { key, directory } = normalizePath(rest, this.options.maxPathLength);
    // The same check as on the content side: a signed link does not stand in for a certificate.
    const protection = this.guard?.protectionOf(`/${key}`);
    const refused = protection ? await this.entitlementRefusal(req, protection, key) : null;
    if (refused) return refused;
    if (directory) throw new LazyContentError('NOT_FOUND', 'Not found');
    const q = req.url.indexOf('?');
    const { links } = await this.readyOr503();
    links.verify(key, new URLSearchParams(q === -1 ? '' : req.url.slice(q + 1)), req.remoteAddress);
    // A save may have landed between the redirect and this request.
    const meta = await this.files.get(key);
    const outcome = meta ? await this.serveSaved(req, meta) : await this.streamLookedUp(req, key);
    return protection ? privateOutcome(outcome) : outcome;
  }

  private async streamLookedUp(req: ContentRequest, key: string): Promise<Outcome> {
    const { entries } = await this.lookup(key);
    if (entries.length === 0) throw new LazyContentError('NOT_FOUND', 'Not found');
    return this.stream(req, key, entries);
  }

  /**
   * Seed steps 1 and 7: a path under an entitlement rule needs a client certificate that the rule accepts.
   * The certificate is the one a trusted proxy forwards in its header, else the TLS connection's own.
   */
  private entitlementRefusal(req: ContentRequest, protection: Protection, key: string): Outcome | null | Promise<Outcome | null> {
    const forwarded = req.headers[this.certificateHeader];
    const certificate =
      typeof forwarded === 'string' && this.fromTrustedProxy(req.remoteAddress) ? forwarded : req.peerCertificate?.();
    const verdict = this.guard!.checkProtected(protection, certificate, { connection: req.connection });
    return verdict instanceof Promise ? verdict.then((v) => this.refusalOf(v, key)) : this.refusalOf(verdict, key);
  }

  private refusalOf(verdict: Verdict, key: string): Outcome | null {
    if (verdict.allowed) return null;
    this.logger.debug({ path: `/${key}`, reason: verdict.reason, detail: verdict.detail }, 'client certificate refused');
    return { kind: 'deny', reason: verdict.message };
  }

  private fromTrustedProxy(address: string | undefined): boolean {
    if (!address) return false;
    let trusted = this.proxyVerdicts.get(address);
    if (trusted === undefined) {
      trusted = this.isTrustedProxy(address);
      this.proxyVerdicts.set(address, trusted);
    }
    return trusted;
  }

  private isTrustedProxy(address: string): boolean {
    const plain = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
    const family = isIP(plain);
    return family !== 0 && this.trustedProxies.check(plain, family === 6 ? 'ipv6' : 'ipv4');
  }

  private async readyOr503(): Promise<Services> {
    try {
      return await this.ready();
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private async lookup(key: string): Promise<{ entries: CatalogEntry[]; links: StreamerLinks }> {
    const services = await this.readyOr503();
    try {
      return { entries: await services.catalog.lookup(key), links: services.links };
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  /** A failing database (or key file) becomes a 503 with Retry-After; the cause is logged, throttled. */
  private unavailable(err: unknown): LazyContentError {
    if (err instanceof LazyContentError && err.code === 'UNAVAILABLE') return err;
    const now = Date.now();
    if (now - this.lastOutageLog >= OUTAGE_LOG_INTERVAL_MS) {
      this.lastOutageLog = now;
      this.logger.error({ err }, 'catalog unavailable: answering 503 until it is back');
    }
    return new LazyContentError('UNAVAILABLE', 'Service temporarily unavailable, try again shortly', {
      cause: err,
      headers: { 'retry-after': RETRY_AFTER_SECONDS },
    });
  }

  /** The disk cache, set up once (crash leftovers removed); again after a failure. */
  private streamerReady(): Promise<void> {
    this.cacheReady ??= this.fills.cache.init().then(
      (report) => {
        if (report.temporaryFilesRemoved + report.filesRemoved > 0) this.logger.info(report, 'cache folder cleaned at start-up');
        if (report.otherCaches > 0) {
          this.logger.info(report, 'cache folder shared with other open caches: their downloads and files are left alone');
        }
      },
      (err: unknown) => {
        this.cacheReady = undefined;
        throw err;
      },
    );
    return this.cacheReady;
  }

  /**
   * Seed steps 8 to 13: from the cache when the file was streamed before, else from its fill (joined when
   * one is running, started otherwise). HEAD with a size from the catalog does not download.
   */
  private async stream(req: ContentRequest, key: string, entries: CatalogEntry[]): Promise<Outcome> {
    await this.streamerReady();
    if (req.headers[SAVE_MARKER_HEADER] !== undefined && !this.fills.running(key)) this.unscheduled.add(key);
    const first = entries[0]!;
    if (first.maxAgeMs !== null && !this.fills.running(key)) {
      // Served fresh: a cached copy past its age is dropped (readers on it finish), and the file fetched anew.
      const record = this.fills.cache.lookup(key);
      if (record && Date.now() - record.completedAt >= first.maxAgeMs) await this.fills.cache.delete(key);
    }
    if (req.method === 'HEAD' && first.size !== null && !this.fills.running(key) && !this.fills.cache.lookup(key)) {
      return catalogHeadOutcome(key, first.size, first.contentType, this.serveSettings);
    }
    const acquired = await this.fills.open(key, await this.sourcesFor(entries));
    if (acquired.kind === 'cached') {
      const meta = { ...metaFor(key, acquired.file.info), contentType: acquired.file.record.contentType ?? metaFor(key, acquired.file.info).contentType };
      return this.serveOpened(req, meta, acquired.file);
    }
    const head = await acquired.fill.head;
    // A fill that failed between the upstream's headers and ours: no byte went out yet, so say so plainly.
    if (acquired.fill.state === 'failed') {
      throw acquired.fill.file.failure ?? new LazyContentError('UPSTREAM_FAILED', 'The file could not be fetched from upstream');
    }
    return fillOutcome(req.method, req.headers, key, head, acquired.fill, this.serveSettings);
  }

  private async sourcesFor(entries: CatalogEntry[]): Promise<FillSource[]> {
    const { catalog } = await this.readyOr503();
    const sources: FillSource[] = [];
    for (const entry of entries) {
      let remote;
      try {
        remote = await catalog.remoteById(entry.remoteId);
      } catch (err) {
        throw this.unavailable(err);
      }
      if (remote) sources.push({ entry, remote });
    }
    if (sources.length === 0) throw new LazyContentError('NOT_FOUND', 'Not found');
    return sources;
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
    const started = await this.services?.catch(() => undefined);
    await started?.worker.stop();
    await this.fills.close();
    await this.fills.cache.close();
    const services = await this.services?.catch(() => undefined);
    if (services?.ownsDataSource) await services.dataSource.destroy();
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
        return this.serveOpened(req, meta, file);
      }
      await file.close();
      meta = this.files.remember(meta.key, file.info);
    }
  }

  /** Conditional and range evaluation on a file held open; the file is closed unless the body takes it. */
  private async serveOpened(req: ContentRequest, meta: FileMeta, file: OpenedFile): Promise<Outcome> {
    let plan;
    try {
      plan = planResponse(req.method, req.headers, meta, this.serveSettings);
    } catch (err) {
      await file.close();
      throw err;
    }
    if (plan.status === 304 || req.method === 'HEAD' || meta.info.size === 0) {
      await file.close();
      return fileOutcome(plan, meta, this.serveSettings, null);
    }
    return fileOutcome(plan, meta, this.serveSettings, { kind: 'file', file });
  }
}

function catalogKeyOf(path: string): string {
  return normalizePath(path.replace(/^\/+/, ''), 4096, { decoded: true }).key;
}

/** The trusted proxies option as a BlockList (used as an allow list); a bad entry is an OptionsError. */
function blockListOf(entries: string[]): BlockList {
  const list = new BlockList();
  entries.forEach((entry, i) => {
    const [address = '', prefix, extra] = entry.trim().split('/');
    const family = isIP(address);
    const bits = prefix === undefined ? undefined : Number(prefix);
    const max = family === 6 ? 128 : 32;
    if (family === 0 || extra !== undefined || (bits !== undefined && (!Number.isInteger(bits) || bits < 0 || bits > max))) {
      throw new OptionsError(
        `lazy-content: invalid options:\n  - option "entitlement.trustedProxies[${i}]" must be an IP address or CIDR such as "10.0.0.0/8" (got ${JSON.stringify(entry)})`,
      );
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, type);
    else list.addSubnet(address, bits, type);
  });
  return list;
}

/** Creates a lazy-content instance. Options are validated here: a mistake throws an `OptionsError` at start-up. */
export function createLazyContent(options?: LazyContentOptions): LazyContent {
  return new LazyContent(options);
}

/**
 * Entitled content must not be kept by shared caches (a proxy would hand it to clients without a
 * certificate): a protected path's response says `private` instead of `public`.
 */
function privateOutcome(outcome: Outcome): Outcome {
  if (outcome.kind !== 'file' && outcome.kind !== 'stream') return outcome;
  const current = outcome.headers['cache-control'];
  const key = typeof current === 'string' ? current : '';
  let replaced = privateCacheControl.get(key);
  if (replaced === undefined) {
    const directives = key.split(',').map((d) => d.trim()).filter((d) => d && d !== 'public');
    replaced = ['private', ...directives].join(', ');
    // The values come from the options, so there are few; the bound only guards against surprises.
    if (privateCacheControl.size >= 64) privateCacheControl.clear();
    privateCacheControl.set(key, replaced);
  }
  outcome.headers['cache-control'] = replaced;
  return outcome;
}

/** Cache-Control values and their private forms. */
const privateCacheControl = new Map<string, string>();
