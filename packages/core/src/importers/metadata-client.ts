import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { request } from 'undici';
import type { DigestAlgorithm, Remote } from '../catalog/types.js';
import { fillEngineDefaults } from '../streamer/fill-engine.js';
import { classifyBodyError, classifyRequestError, describeUrl, requestHeaders, UpstreamClients } from '../streamer/upstream.js';
import { upstreamError } from './paths.js';

/** Statuses that mean "this optional file is not there" (S3-like stores answer 403 for a missing object). */
const ABSENT = new Set([403, 404, 410]);
const NOT_A_FILE = new Set([204, 205, 206]);

export interface MetadataClientSettings {
  /** @default 'lazy-content' */
  userAgent?: string;
  /** @default 5 */
  maxRedirections?: number;
}

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

  constructor(
    readonly remote: Remote,
    settings: MetadataClientSettings = {},
  ) {
    this.clients = new UpstreamClients(settings.maxRedirections ?? fillEngineDefaults.maxRedirections);
    this.headers = requestHeaders(remote, settings.userAgent ?? fillEngineDefaults.userAgent);
  }

  /**
   * The body of `url` as chunks; failures are `UPSTREAM_FAILED` errors that name the URL (without credentials
   * or query). With `optional`, a 403, 404 or 410 gives null.
   */
  async open(url: string, options: { optional?: boolean } = {}): Promise<AsyncIterable<Buffer> | null> {
    let response;
    try {
      response = await request(url, { dispatcher: this.clients.dispatcher(this.remote), method: 'GET', headers: this.headers });
    } catch (err) {
      throw upstreamError(`could not fetch ${describeUrl(url)}: ${classifyRequestError(err)} (${(err as Error).message})`, err);
    }
    const { statusCode, body } = response;
    if (statusCode < 200 || statusCode > 299 || NOT_A_FILE.has(statusCode)) {
      discard(body);
      if (options.optional && ABSENT.has(statusCode)) return null;
      throw upstreamError(`could not fetch ${describeUrl(url)}: the upstream answered ${statusCode}`);
    }
    return chunksOf(body, url);
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
