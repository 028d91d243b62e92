import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { LazyContentError } from '../errors.js';
import type { ContentRequest, ErrorOutcome, ResponseOutcome } from '../outcome.js';

/** An error outcome for anything thrown; unknown failures carry a generic message. */
export function errorOutcome(err: unknown): ErrorOutcome {
  const e = LazyContentError.fromUnknown(err);
  return { kind: 'error', status: e.status, code: e.code, message: e.message, headers: e.headers };
}

function writeText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = `${text}\n`;
  res.writeHead(status, {
    ...headers,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-content-type-options': 'nosniff',
  });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

/**
 * Writes an outcome to a node:http response: the one responder every adapter uses. Resolves when the
 * response is finished or abandoned; never rejects. A body that fails midway destroys the connection.
 */
export async function writeOutcome(res: ServerResponse, outcome: ResponseOutcome): Promise<void> {
  if (res.headersSent || res.destroyed) {
    // Someone else answered (or the client left): all we can do is release what the outcome holds.
    if ((outcome.kind === 'file' || outcome.kind === 'stream') && outcome.body) outcome.body.discard();
    if (res.headersSent && !res.writableEnded) res.destroy();
    return;
  }
  switch (outcome.kind) {
    case 'deny':
      writeText(res, 403, `Forbidden: ${outcome.reason}`);
      return;
    case 'error':
      writeText(res, outcome.status, outcome.message, outcome.headers);
      return;
    case 'redirect': {
      const body = 'Found\n';
      res.writeHead(302, {
        ...outcome.headers,
        location: outcome.location,
        'cache-control': 'no-store',
        'content-type': 'text/plain; charset=utf-8',
        'content-length': body.length,
      });
      res.end(res.req?.method === 'HEAD' ? undefined : body);
      return;
    }
    case 'file':
    case 'stream': {
      res.writeHead(outcome.status, outcome.headers);
      if (outcome.body) await outcome.body.writeTo(res);
      else res.end();
      return;
    }
  }
}

/**
 * Maps a node:http request to the core's request. `url` should be the URL as the client sent it: frameworks
 * that strip a mount path keep the original (`req.originalUrl` in Express, `ctx.originalUrl` in Koa).
 */
export function toContentRequest(req: IncomingMessage, url?: string): ContentRequest {
  const socket = req.socket as Partial<TLSSocket>;
  return {
    method: req.method ?? 'GET',
    url: url ?? req.url ?? '/',
    headers: req.headers,
    remoteAddress: req.socket.remoteAddress,
    connection: req.socket,
    peerCertificate: socket.encrypted && socket.getPeerCertificate ? () => peerCertificateOf(socket as TLSSocket) : undefined,
  };
}

/**
 * The DER bytes of the certificate the peer presented, read once per connection: every request of a
 * keep-alive connection gets the same buffer, which the entitlement guard recognises without hashing it.
 */
const peerCertificates = new WeakMap<TLSSocket, Buffer | null>();

function peerCertificateOf(socket: TLSSocket): Buffer | undefined {
  let der = peerCertificates.get(socket);
  if (der === undefined) {
    // getPeerX509Certificate is several times cheaper than getPeerCertificate, which builds fingerprints,
    // modulus and key for every call; only the DER bytes are needed.
    const raw = socket.getPeerX509Certificate?.()?.raw;
    der = raw && raw.length > 0 ? raw : null;
    // A request only arrives after the handshake, so this is the certificate the connection was opened with.
    peerCertificates.set(socket, der);
  }
  return der ?? undefined;
}
