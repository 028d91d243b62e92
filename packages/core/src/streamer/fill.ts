import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { request } from 'undici';
import type { CacheRecord, DiskCache, TempFile } from '../cache/disk-cache.js';
import type { CatalogEntry, DigestAlgorithm, Remote } from '../catalog/types.js';
import { LazyContentError } from '../errors.js';
import type { ByteRange } from '../http/bodies.js';
import type { Logger } from '../logger.js';
import type { ResponseBody } from '../outcome.js';
import type { SourceCooldowns } from './cooldown.js';
import type { EmitFillEvent, FillFailureReason } from './events.js';
import { type GrowingFileSource, GrowingFileReader, LocalGrowingFile } from './growing-file.js';
import type { Release } from './semaphore.js';
import { TempWriter } from './temp-writer.js';
import {
  classifyBodyError,
  classifyRequestError,
  describeUrl,
  isTimeout,
  requestHeaders,
  type SourceFailureReason,
  type UpstreamClients,
} from './upstream.js';

/** One place a file can be downloaded from: a catalog entry and the remote it belongs to. */
export interface FillSource {
  entry: CatalogEntry;
  remote: Remote;
}

/** What is known once a source answered: enough for the response headers. */
export interface FillHead {
  /** Final size: the catalog's, else the upstream's Content-Length; null when neither is known. */
  size: number | null;
  /** The catalog's content type, else the upstream's, else null. */
  contentType: string | null;
  /** The upstream's Last-Modified, if it sent one. */
  lastModified: string | null;
  /** The algorithm the file is hashed with (the catalog's, else sha256). */
  digestAlgorithm: DigestAlgorithm;
  /** The digest the catalog expects (lower-case hex), or null when it has none. */
  expectedDigest: string | null;
  entryId: number;
  remoteId: number;
}

export type FillState = 'connecting' | 'downloading' | 'committing' | 'completed' | 'failed';

/** Tuning shared by every fill of an engine. */
export interface FillSettings {
  holdbackBytes: number;
  readChunkBytes: number;
  memoryWindowBytes: number;
  userAgent: string;
}

/** What a fill needs from the engine that runs it. */
export interface FillContext {
  cache: DiskCache;
  clients: UpstreamClients;
  cooldowns: SourceCooldowns;
  logger: Logger;
  emit: EmitFillEvent;
  settings: FillSettings;
  /** Called once when the fill stops being the one for its key (failed, or completed and cached). */
  onSettled: (fill: Fill) => void;
}

/** A failure of one source, before or during the body. */
class SourceError extends Error {
  constructor(
    readonly reason: SourceFailureReason,
    readonly status?: number,
  ) {
    super(status === undefined ? reason : `${reason} ${status}`);
  }
}

/** The failure of the fill as a whole, with what clients are told. */
class FillFailure extends Error {
  constructor(
    readonly reason: FillFailureReason,
    readonly clientError: LazyContentError,
  ) {
    super(reason);
  }
}

const CLIENT_ERRORS = {
  timeout: () => new LazyContentError('UPSTREAM_TIMEOUT', 'The upstream repository did not answer in time'),
  unavailable: () => new LazyContentError('UPSTREAM_FAILED', 'The upstream repository is unavailable'),
  download: () => new LazyContentError('UPSTREAM_FAILED', 'The download from the upstream repository failed'),
  stalled: () => new LazyContentError('UPSTREAM_TIMEOUT', 'The download from the upstream repository stalled'),
  verification: () => new LazyContentError('UPSTREAM_FAILED', 'The downloaded file failed verification'),
  disk: () => new LazyContentError('UNAVAILABLE', 'The cache is unavailable', { headers: { 'retry-after': '10' } }),
  aborted: () => new LazyContentError('UNAVAILABLE', 'The download was stopped', { headers: { 'retry-after': '1' } }),
};

/** Statuses in 2xx that do not carry the whole file. */
const NOT_A_FILE = new Set([204, 205, 206]);

function headerValue(headers: IncomingHttpHeaders, name: string): string | null {
  const value = headers[name];
  return typeof value === 'string' ? value : null;
}

function contentLength(headers: IncomingHttpHeaders): number | null {
  const value = headerValue(headers, 'content-length');
  return value !== null && /^\d+$/.test(value) ? Number(value) : null;
}

/**
 * Drops a response body we will not read. undici's body emits an AbortError when destroyed; without a
 * listener that would be an uncaught exception that takes the process down.
 */
function discardBody(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

interface Answer {
  source: FillSource;
  body: Readable;
  head: FillHead;
  release: Release;
}

/**
 * One download of one file, shared by every client that wants the file meanwhile. The download writes to a
 * temp file in the cache at the upstream's pace; clients are readers of that file (`createReader`), each at
 * its own pace. Sources are tried in order until one answers with a 2xx (`head`); the bytes are hashed as
 * they arrive, and the end of the file is held back from readers until size and digest are verified. On
 * success the file moves into the cache (`done`); on failure every reader is destroyed, the temp file is
 * deleted and the source is cooled down.
 */
export class Fill {
  /** Settles once a source answered with a 2xx (resolves) or every source failed before that (rejects). */
  readonly head: Promise<FillHead>;
  /** Resolves with the index record once the file is in the cache; rejects when the fill failed. */
  readonly done: Promise<CacheRecord>;
  private readonly growing: LocalGrowingFile;
  private current: FillState = 'connecting';
  private written = 0;
  private readerCount = 0;
  private readonly controller = new AbortController();
  private abortError: LazyContentError | undefined;
  private settledHead = false;
  private resolveHead!: (head: FillHead) => void;
  private rejectHead!: (err: LazyContentError) => void;
  private resolveDone!: (record: CacheRecord) => void;
  private rejectDone!: (err: LazyContentError) => void;
  private expectedSize: number | null = null;
  private expectedDigest: string | null = null;
  private answered: FillSource | undefined;
  private readonly startedAt = Date.now();

  constructor(
    /** The file key (normalised request path). */
    readonly key: string,
    private readonly sources: readonly FillSource[],
    private readonly ctx: FillContext,
  ) {
    this.head = new Promise<FillHead>((resolve, reject) => {
      this.resolveHead = resolve;
      this.rejectHead = reject;
    });
    this.done = new Promise<CacheRecord>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Nobody may be waiting on them (every client left): a failure is reported through events, not crashes.
    this.head.catch(() => undefined);
    this.done.catch(() => undefined);
    // The window's blocks are a reader's chunk: a reader that follows the download sends one buffer per read.
    this.growing = new LocalGrowingFile(() => ctx.cache.open(key), ctx.settings.memoryWindowBytes, ctx.settings.readChunkBytes);
  }

  /** The growing file, as readers see it. */
  get file(): GrowingFileSource {
    return this.growing;
  }

  get state(): FillState {
    return this.current;
  }

  /** Bytes of the file on disk so far. */
  get bytesWritten(): number {
    return this.written;
  }

  /** Readers attached now. */
  get readers(): number {
    return this.readerCount;
  }

  /**
   * A reader of the file from `range.start` (default 0) to `range.end` (inclusive; default the end of the
   * file). It starts at once, from disk, whatever the download has reached, and follows it. Destroying it
   * only detaches it: the download goes on.
   */
  createReader(range: Partial<ByteRange> = {}): GrowingFileReader {
    const reader = new GrowingFileReader(this.growing, { ...range, chunkBytes: this.ctx.settings.readChunkBytes });
    this.readerCount++;
    reader.once('close', () => this.readerCount--);
    return reader;
  }

  /** A response body for the HTTP layer: one reader piped to the response, destroying it on failure. */
  createBody(range?: ByteRange): ResponseBody {
    return new FillBody(this, range);
  }

  /** Stops the download: readers are destroyed with `error`, nothing is cached. No effect once verified. */
  abort(error: LazyContentError = CLIENT_ERRORS.aborted()): void {
    if (this.current === 'committing' || this.current === 'completed' || this.current === 'failed') return;
    this.abortError ??= error;
    this.controller.abort(this.abortError);
  }

  /** Starts the download; called once by the engine. */
  start(): void {
    void this.run();
  }

  private async run(): Promise<void> {
    let temp: TempFile | undefined;
    let release: Release | undefined;
    let verified: { size: number; digest: string; head: FillHead };
    try {
      // The temp file and the upstream's answer are awaited together: neither waits for the other, so the
      // first clients get their headers one disk round trip sooner.
      const creating = this.ctx.cache.createTemp().then(
        (created) => ({ created }),
        (err: unknown) => ({ err }),
      );
      const connecting = this.connect().then(
        (answer) => ({ answer }),
        (err: unknown) => ({ err }),
      );
      const [made, connected] = await Promise.all([creating, connecting]);
      if ('answer' in connected) release = connected.answer.release;
      if ('err' in made) {
        if ('answer' in connected) discardBody(connected.answer.body);
        throw this.diskFailure(made.err);
      }
      temp = made.created;
      this.growing.attach(temp.handle);
      if ('err' in connected) throw connected.err;
      this.throwIfAborted();
      const answer = connected.answer;
      this.answered = answer.source;
      this.current = 'downloading';
      this.expectedSize = answer.head.size;
      this.expectedDigest = answer.head.expectedDigest;
      if (answer.head.size !== null) this.ctx.cache.reserve(temp, answer.head.size);
      this.settledHead = true;
      this.resolveHead(answer.head);
      this.emit('fill:head', { key: this.key, entryId: answer.head.entryId, remoteId: answer.head.remoteId, size: answer.head.size });
      verified = { ...(await this.download(answer, temp)), head: answer.head };
    } catch (err) {
      release?.();
      await this.fail(err instanceof FillFailure ? err : this.diskFailure(err), temp);
      return;
    }
    release?.();
    // Verified: the held-back tail goes out now, before the commit's fsync and rename.
    this.current = 'committing';
    this.growing.complete(verified.size);
    await this.commit(temp, verified);
  }

  private async connect(): Promise<Answer> {
    const candidates = this.ctx.cooldowns.select(this.sources);
    let last: SourceFailureReason | undefined;
    for (const source of candidates) {
      let release: Release;
      try {
        release = await this.ctx.clients.semaphore(source.remote).acquire(this.controller.signal);
      } catch {
        throw this.abortedFailure();
      }
      try {
        return { ...(await this.ask(source)), release };
      } catch (err) {
        release();
        if (this.abortError) throw this.abortedFailure();
        const failure = err instanceof SourceError ? err : new SourceError(classifyRequestError(err));
        this.sourceFailed(source, failure, 'head', err);
        last = failure.reason;
      }
    }
    throw new FillFailure('no_source', last !== undefined && isTimeout(last) ? CLIENT_ERRORS.timeout() : CLIENT_ERRORS.unavailable());
  }

  /** One request to one source, up to its response headers. */
  private async ask(source: FillSource): Promise<Omit<Answer, 'release'>> {
    const { entry, remote } = source;
    const response = await request(entry.url, {
      dispatcher: this.ctx.clients.dispatcher(remote),
      method: 'GET',
      headers: requestHeaders(remote, this.ctx.settings.userAgent),
      signal: this.controller.signal,
    });
    const { statusCode, headers, body } = response;
    if (statusCode < 200 || statusCode > 299 || NOT_A_FILE.has(statusCode)) {
      discardBody(body);
      throw new SourceError('status', statusCode);
    }
    const length = contentLength(headers);
    if (entry.size !== null && length !== null && length !== entry.size) {
      discardBody(body);
      throw new SourceError('size_mismatch');
    }
    const head: FillHead = {
      size: entry.size ?? length,
      contentType: entry.contentType ?? headerValue(headers, 'content-type'),
      lastModified: headerValue(headers, 'last-modified'),
      digestAlgorithm: entry.digestAlgorithm ?? 'sha256',
      expectedDigest: entry.digest?.toLowerCase() ?? null,
      entryId: entry.id,
      remoteId: remote.id,
    };
    return { source, body, head };
  }

  /** Streams the body to the temp file, hashing it; resolves once size and digest are verified. */
  private async download(answer: Answer, temp: TempFile): Promise<{ size: number; digest: string }> {
    const { source, body, head } = answer;
    const hash = createHash(head.digestAlgorithm);
    const writer = new TempWriter(temp.handle, (onDisk) => {
      this.written = onDisk;
      this.growing.advance(onDisk, this.readableFor(onDisk));
    });
    let received = 0;
    let diskError: unknown;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        received += chunk.length;
        if (head.size !== null && received > head.size) throw new SourceError('size_mismatch');
        hash.update(chunk);
        // Readers that follow the download take these bytes from memory once they are on disk.
        this.growing.keep(chunk, received - chunk.length);
        try {
          await writer.write(chunk);
        } catch (err) {
          diskError = err;
          throw err;
        }
      }
      await writer.drain().catch((err: unknown) => {
        diskError = err;
        throw err;
      });
    } catch (err) {
      discardBody(body);
      if (this.abortError) throw this.abortedFailure();
      if (diskError !== undefined) throw this.diskFailure(diskError);
      const failure = err instanceof SourceError ? err : new SourceError(classifyBodyError(err));
      throw this.sourceFailed(source, failure, 'body', err);
    }
    if (head.size !== null && received !== head.size) {
      throw this.sourceFailed(source, new SourceError('size_mismatch'), 'body', `received ${received} of ${head.size} bytes`);
    }
    const digest = hash.digest('hex');
    if (head.expectedDigest !== null && digest !== head.expectedDigest) {
      throw this.sourceFailed(source, new SourceError('digest_mismatch'), 'body', `${head.digestAlgorithm} ${digest}`);
    }
    return { size: received, digest };
  }

  /**
   * How much of `written` readers may have. When the size is known, everything but the last `holdbackBytes`
   * of the file: a client that was sent Content-Length must not receive a complete-looking file before it is
   * verified, and there is no lag behind the download until then. When only the digest is known, the last
   * `holdbackBytes` written so far: the end is unknown, so the margin trails the download. With neither,
   * there is nothing to verify but a clean end of the upstream body, which a reader's clean end waits for.
   */
  private readableFor(written: number): number {
    const { holdbackBytes } = this.ctx.settings;
    if (this.expectedSize !== null) return Math.min(written, Math.max(0, this.expectedSize - holdbackBytes));
    if (this.expectedDigest !== null) return Math.max(0, written - holdbackBytes);
    return written;
  }

  private async commit(temp: TempFile, verified: { size: number; digest: string; head: FillHead }): Promise<void> {
    const { head } = verified;
    const record: CacheRecord = {
      key: this.key,
      size: verified.size,
      digestAlgorithm: head.digestAlgorithm,
      digest: verified.digest,
      contentType: head.contentType,
      completedAt: Date.now(),
    };
    try {
      const releasePin = await this.ctx.cache.commit(temp, record);
      // Readers of the fill stay on the renamed file through the shared descriptor: keep it from eviction.
      this.growing.whenClosed(releasePin);
      this.current = 'completed';
      this.ctx.onSettled(this);
      this.emit('fill:completed', {
        key: this.key,
        record,
        entryId: head.entryId,
        remoteId: head.remoteId,
        durationMs: Date.now() - this.startedAt,
      });
      this.ctx.logger.info({ key: this.key, size: record.size, entryId: head.entryId }, 'fill completed');
      this.resolveDone(record);
    } catch (err) {
      // Every reader got the verified file; only the cache missed it, so the next request downloads again.
      this.current = 'failed';
      this.ctx.onSettled(this);
      this.ctx.logger.error({ key: this.key, err: message(err) }, 'fill verified but could not be cached');
      const clientError = CLIENT_ERRORS.disk();
      this.emit('fill:failed', this.failedEvent('cache_write', clientError));
      this.rejectDone(clientError);
    } finally {
      this.growing.release();
    }
  }

  private async fail(failure: FillFailure, temp: TempFile | undefined): Promise<void> {
    this.current = 'failed';
    // Readers first, at once: their connections are cut before anything else happens.
    this.growing.fail(failure.clientError);
    if (!this.settledHead) {
      this.settledHead = true;
      this.rejectHead(failure.clientError);
    }
    this.ctx.onSettled(this);
    if (temp) {
      await this.ctx.cache.discard(temp).catch((err: unknown) => {
        this.ctx.logger.error({ key: this.key, err: message(err) }, 'could not remove a failed download');
      });
    }
    this.growing.release();
    this.ctx.logger.warn({ key: this.key, reason: failure.reason, bytesWritten: this.written }, 'fill failed');
    this.emit('fill:failed', this.failedEvent(failure.reason, failure.clientError));
    this.rejectDone(failure.clientError);
  }

  private failedEvent(reason: FillFailureReason, clientError: LazyContentError) {
    return {
      key: this.key,
      reason,
      code: clientError.code,
      entryId: this.answered?.entry.id ?? null,
      remoteId: this.answered?.remote.id ?? null,
      bytesWritten: this.written,
    };
  }

  /** Reports, logs and cools down a failed source; returns the fill failure it means if it was mid-body. */
  private sourceFailed(source: FillSource, failure: SourceError, phase: 'head' | 'body', cause: unknown): FillFailure {
    const { entry, remote } = source;
    this.ctx.logger.warn(
      {
        key: this.key,
        entryId: entry.id,
        remoteId: remote.id,
        url: describeUrl(entry.url),
        reason: failure.reason,
        status: failure.status,
        phase,
        err: typeof cause === 'string' ? cause : message(cause),
      },
      'upstream source failed',
    );
    this.emit('source:failed', { key: this.key, entryId: entry.id, remoteId: remote.id, reason: failure.reason, status: failure.status, phase });
    const until = this.ctx.cooldowns.coolDown(entry);
    this.emit('source:cooled-down', { entryId: entry.id, remoteId: remote.id, until });
    const { reason } = failure;
    if (reason === 'size_mismatch' || reason === 'digest_mismatch') return new FillFailure(reason, CLIENT_ERRORS.verification());
    if (reason === 'body_timeout') return new FillFailure(reason, CLIENT_ERRORS.stalled());
    return new FillFailure('body_cut', CLIENT_ERRORS.download());
  }

  private diskFailure(err: unknown): FillFailure {
    if (this.abortError) return this.abortedFailure();
    this.ctx.logger.error({ key: this.key, err: message(err) }, 'cache disk failure');
    return new FillFailure('disk', CLIENT_ERRORS.disk());
  }

  private abortedFailure(): FillFailure {
    return new FillFailure('aborted', this.abortError ?? CLIENT_ERRORS.aborted());
  }

  private throwIfAborted(): void {
    if (this.abortError) throw this.abortedFailure();
  }

  private emit: EmitFillEvent = (name, ...args) => {
    try {
      this.ctx.emit(name, ...args);
    } catch (err) {
      // A listener's bug must not break a download that other clients are reading.
      this.ctx.logger.error({ key: this.key, event: name, err: message(err) }, 'fill event listener threw');
    }
  };
}

/** A fill as a response body: one reader piped to the response; a failure destroys the connection. */
export class FillBody implements ResponseBody {
  constructor(
    private readonly fill: Fill,
    private readonly range?: ByteRange,
  ) {}

  writeTo(res: Writable): Promise<void> {
    const start = this.range?.start ?? 0;
    // Nothing to send yet (the upstream's first bytes, or a tail held back until verified): the client gets
    // its status and headers now rather than with the first chunk. When bytes are ready, the headers go with
    // them in one write.
    if (this.fill.file.readableBytes <= start) (res as Partial<ServerResponse>).flushHeaders?.();
    const reader = this.fill.createReader(this.range);
    // `reader.pipe(res)` with the two rules of `pipeline`, without its cost per response (an AbortController
    // and a DOMException each): a failed reader cuts the connection, never a clean end; a response that
    // closes first (the client left) destroys the reader, which only detaches it from the download.
    return new Promise<void>((resolve) => {
      reader.once('error', (err) => {
        if (!res.destroyed) res.destroy(err);
        resolve();
      });
      const detach = (): void => {
        if (!reader.destroyed) reader.destroy();
        resolve();
      };
      res.once('close', detach);
      // A socket error on the response (EPIPE, reset) ends it like a close; `pipe` would rethrow it unheard.
      res.on('error', detach);
      reader.pipe(res);
    });
  }

  discard(): void {
    // The reader is made in `writeTo`, so there is nothing to release.
  }
}
