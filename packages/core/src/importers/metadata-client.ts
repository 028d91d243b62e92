import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { DigestAlgorithm, Remote } from '../catalog/types.js';
import { fillEngineDefaults } from '../streamer/fill-engine.js';
import { classifyBodyError, classifyRequestError, describeUrl, requestHeaders, UpstreamClients } from '../streamer/upstream.js';
import { upstreamError } from './paths.js';

/** Statuses that mean "this optional file is not there" (S3-like stores answer 403 for a missing object). */
const ABSENT = new Set([403, 404, 410]);
const NOT_A_FILE = new Set([204, 205, 206]);

/** Answers that may well be different a moment later: the request is made again. */
const TRANSIENT = new Set([408, 425, 429, 500, 502, 503, 504]);

export interface MetadataClientSettings {
  /** @default 'lazy-content' */
  userAgent?: string;
  /** @default 5 */
  maxRedirections?: number;
  /**
   * Tries per file: a connection that fails, a timeout, or a 408/425/429/5xx answer is tried again, after
   * `retryDelayMs`, then twice that, and so on (or the upstream's `Retry-After`, up to 30 s). TLS failures and
   * other answers are not retried. @default 3
   */
  attempts?: number;
  /** @default 500 */
  retryDelayMs?: number;
}

export const metadataClientDefaults = {
  attempts: 3,
  retryDelayMs: 500,
} as const;

/** A metadata file read whole, with what the catalog needs to know of it. */
export interface FetchedFile {
  bytes: Buffer;
  size: number;
  digestAlgorithm: DigestAlgorithm;
  digest: string;
}

/**
 * Downloads a repository's metadata with one remote's settings (TLS, client certificate, proxy, headers, basic
 * auth, timeouts): the streamer's own client code, so that an import reaches the upstream exactly as fills do.
 */
export class MetadataClient {
  private readonly clients: UpstreamClients;
  private readonly headers: Record<string, string>;
  private readonly attempts: number;
  private readonly retryDelayMs: number;

  constructor(
    readonly remote: Remote,
    settings: MetadataClientSettings = {},
  ) {
    this.clients = new UpstreamClients(settings.maxRedirections ?? fillEngineDefaults.maxRedirections);
    this.headers = requestHeaders(remote, settings.userAgent ?? fillEngineDefaults.userAgent);
    this.attempts = settings.attempts ?? metadataClientDefaults.attempts;
    this.retryDelayMs = settings.retryDelayMs ?? metadataClientDefaults.retryDelayMs;
    if (!Number.isInteger(this.attempts) || this.attempts < 1) throw new RangeError('attempts must be a whole number of at least 1');
    if (!Number.isInteger(this.retryDelayMs) || this.retryDelayMs < 0) throw new RangeError('retryDelayMs must be a whole number of at least 0');
  }

  /**
   * The body of `url` as chunks; failures are `UPSTREAM_FAILED` errors that name the URL (without credentials
   * or query). With `optional`, a 403, 404 or 410 gives null.
   */
  async open(url: string, options: { optional?: boolean } = {}): Promise<AsyncIterable<Buffer> | null> {
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= this.attempts;
      const tries = attempt > 1 ? ` (${attempt} tries)` : '';
      let response;
      try {
        response = await request(url, { dispatcher: this.clients.dispatcher(this.remote), method: 'GET', headers: this.headers });
      } catch (err) {
        const reason = classifyRequestError(err);
        if (!last && reason !== 'tls') {
          await sleep(this.delay(attempt, undefined));
          continue;
        }
        throw upstreamError(`could not fetch ${describeUrl(url)}: ${reason} (${(err as Error).message})${tries}`, err);
      }
      const { statusCode, body, headers } = response;
      if (statusCode >= 200 && statusCode <= 299 && !NOT_A_FILE.has(statusCode)) return chunksOf(body, url);
      discard(body);
      if (options.optional && ABSENT.has(statusCode)) return null;
      if (!last && TRANSIENT.has(statusCode)) {
        await sleep(this.delay(attempt, headers['retry-after']));
        continue;
      }
      throw upstreamError(`could not fetch ${describeUrl(url)}: the upstream answered ${statusCode}${tries}`);
    }
  }

  /** The wait before try `attempt + 1`: the upstream's Retry-After in seconds when it gives one (≤ 30 s), else doubling. */
  private delay(attempt: number, retryAfter: string | string[] | undefined): number {
    const seconds = typeof retryAfter === 'string' && /^\d{1,2}$/.test(retryAfter.trim()) ? Number(retryAfter) : null;
    if (seconds !== null && seconds <= 30) return seconds * 1000;
    return this.retryDelayMs * 2 ** (attempt - 1);
  }

  /** A whole (small) file and its SHA-256; null when `optional` and absent. */
  async fetch(url: string, options: { optional?: boolean } = {}): Promise<FetchedFile | null> {
    const chunks = await this.open(url, options);
    if (chunks === null) return null;
    const parts: Buffer[] = [];
    for await (const chunk of chunks) parts.push(chunk);
    const bytes = Buffer.concat(parts);
    return { bytes, size: bytes.length, digestAlgorithm: 'sha256', digest: createHash('sha256').update(bytes).digest('hex') };
  }

  async close(): Promise<void> {
    await this.clients.close();
  }
}

function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** The body's chunks; a stall or a cut becomes an error that says so. Stopping early closes the connection. */
async function* chunksOf(body: Readable, url: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    throw upstreamError(`download of ${describeUrl(url)} failed: ${classifyBodyError(err)} (${(err as Error).message})`, err);
  } finally {
    if (!body.readableEnded) discard(body);
  }
}
