import { Agent, type Dispatcher, interceptors, ProxyAgent } from 'undici';
import type { Remote } from '../catalog/types.js';
import { Semaphore } from './semaphore.js';

/** Why one source (a catalog entry) failed. */
export type SourceFailureReason =
  /** Connection refused, reset, DNS failure, socket closed before the response headers. */
  | 'network'
  /** TLS handshake failed: untrusted certificate, wrong host name, client certificate refused. */
  | 'tls'
  /** The proxy refused the tunnel or the request. */
  | 'proxy'
  /** The upstream answered with a status other than a 2xx with a body. */
  | 'status'
  | 'connect_timeout'
  | 'headers_timeout'
  /** The body stalled for longer than the remote's `bodyIdleTimeoutMs`. */
  | 'body_timeout'
  /** The body ended early or the connection was reset mid-body. */
  | 'body_cut'
  /** Content-Length differed from the catalog's size, or the body from either. */
  | 'size_mismatch'
  | 'digest_mismatch';

const TIMEOUT_REASONS: ReadonlySet<SourceFailureReason> = new Set(['connect_timeout', 'headers_timeout', 'body_timeout']);

export function isTimeout(reason: SourceFailureReason): boolean {
  return TIMEOUT_REASONS.has(reason);
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'HOSTNAME_MISMATCH',
  'UND_ERR_PRX_TLS',
]);

function codesOf(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') codes.push(code);
    if (e.message.startsWith('Proxy response')) codes.push('PROXY');
  }
  return codes;
}

/** Names the failure of a request that had not yet answered (connect, TLS, proxy, headers). */
export function classifyRequestError(err: unknown): SourceFailureReason {
  const codes = codesOf(err);
  if (codes.includes('UND_ERR_CONNECT_TIMEOUT')) return 'connect_timeout';
  if (codes.includes('UND_ERR_HEADERS_TIMEOUT')) return 'headers_timeout';
  if (codes.includes('PROXY')) return 'proxy';
  if (codes.some((c) => TLS_CODES.has(c) || c.startsWith('ERR_TLS_') || c.startsWith('ERR_SSL_'))) return 'tls';
  return 'network';
}

/** Names the failure of a body being read. */
export function classifyBodyError(err: unknown): SourceFailureReason {
  return codesOf(err).includes('UND_ERR_BODY_TIMEOUT') ? 'body_timeout' : 'body_cut';
}

/**
 * The URL as logs may show it: origin and path, without credentials or query (a signed CDN URL carries its
 * token there). Never shown to clients at all.
 */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

/** Request headers for one remote: its extra headers, then basic auth, which wins over an extra `authorization`. */
export function requestHeaders(remote: Remote, userAgent: string): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': userAgent };
  for (const [name, value] of Object.entries(remote.headers ?? {})) headers[name.toLowerCase()] = value;
  if (remote.basicAuth) {
    const { username, password } = remote.basicAuth;
    headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }
  // The digest is of the bytes as stored upstream, so no transfer coding may change them.
  headers['accept-encoding'] = 'identity';
  return headers;
}

function dispatcherFor(remote: Remote, maxRedirections: number): { base: Dispatcher; composed: Dispatcher } {
  const tls = {
    ca: remote.tls.ca ?? undefined,
    cert: remote.tls.cert ?? undefined,
    key: remote.tls.key ?? undefined,
    rejectUnauthorized: remote.tls.verify,
    timeout: remote.connectTimeoutMs,
  };
  const common = {
    headersTimeout: remote.headersTimeoutMs,
    bodyTimeout: remote.bodyIdleTimeoutMs,
  };
  const base: Dispatcher = remote.proxyUrl
    ? new ProxyAgent({ uri: remote.proxyUrl, requestTls: tls, proxyTls: { timeout: remote.connectTimeoutMs }, ...common })
    : new Agent({ connect: tls, ...common });
  const composed = maxRedirections > 0 ? base.compose(interceptors.redirect({ maxRedirections })) : base;
  return { base, composed };
}

interface RemoteClient {
  /** The remote's `updatedAt` when the dispatcher was built: an edited remote gets a new one. */
  version: number;
  base: Dispatcher;
  dispatcher: Dispatcher;
}

/**
 * One undici dispatcher and one download semaphore per remote, built from the remote's settings (TLS, client
 * certificate, proxy, timeouts) and rebuilt when the remote is edited. Connections are kept alive between
 * downloads from one remote.
 */
export class UpstreamClients {
  private readonly clients = new Map<number, RemoteClient>();
  private readonly slots = new Map<number, Semaphore>();

  constructor(private readonly maxRedirections: number) {}

  dispatcher(remote: Remote): Dispatcher {
    const version = remote.updatedAt.getTime();
    const existing = this.clients.get(remote.id);
    if (existing && existing.version === version) return existing.dispatcher;
    // Running downloads keep the old dispatcher until they end; `close` waits for them.
    if (existing) existing.base.close().catch(() => undefined);
    const { base, composed } = dispatcherFor(remote, this.maxRedirections);
    this.clients.set(remote.id, { version, base, dispatcher: composed });
    return composed;
  }

  /** The semaphore that caps concurrent downloads from `remote` (its `maxConcurrentDownloads`). */
  semaphore(remote: Remote): Semaphore {
    let semaphore = this.slots.get(remote.id);
    if (!semaphore) {
      semaphore = new Semaphore(remote.maxConcurrentDownloads);
      this.slots.set(remote.id, semaphore);
    } else if (semaphore.limit !== remote.maxConcurrentDownloads) {
      semaphore.limit = remote.maxConcurrentDownloads;
    }
    return semaphore;
  }

  async close(): Promise<void> {
    const bases = [...this.clients.values()].map((c) => c.base);
    this.clients.clear();
    await Promise.all(bases.map((b) => b.destroy().catch(() => undefined)));
  }
}
