import { LazyContentError } from '../errors.js';
import type { UrlSigner } from './url-signer.js';

/** Query parameters of a signed streamer link. They are never part of a cache key: fills are keyed by path. */
export const LINK_PARAMS = { expires: 'lc-expires', bind: 'lc-bind', signature: 'lc-signature' } as const;

export interface StreamerLinkSettings {
  /** Path prefix of the streamer on this host, e.g. `/_lazy/stream/`. */
  prefix: string;
  /** Absolute base URL of a streamer elsewhere, e.g. `https://streamer.example.com/_lazy/stream/`. */
  publicUrl?: string | undefined;
  expiresInSeconds: number;
  /** Bind each link to the client address it was made for. */
  bindClientAddress: boolean;
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client. */
function canonicalAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** A path key as URL path segments, each percent-encoded, so that decoding once gives the key back. */
export function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/**
 * What is signed: a version tag, the normalised path, the expiry and the bindings, one per line. The path
 * is the normalised key, so `a//b` and `a/b` are one link and a swapped path fails.
 */
function payload(key: string, expires: string, clientAddress: string | null): string {
  return `lazy-content-link/1\n${key}\n${expires}\n${clientAddress === null ? '' : `ip=${clientAddress}`}`;
}

/** Makes and checks the signed, expiring links from the content side to the streamer. */
export class StreamerLinks {
  constructor(
    private readonly signer: UrlSigner,
    readonly settings: StreamerLinkSettings,
  ) {}

  /** The `Location` of the 302 for `key`: relative to this host, or absolute when `publicUrl` is set. */
  create(key: string, clientAddress: string | undefined, now = Date.now()): string {
    const expires = String(Math.floor(now / 1000) + this.settings.expiresInSeconds);
    const bound = this.settings.bindClientAddress ? canonicalAddress(clientAddress) : null;
    const query = new URLSearchParams({ [LINK_PARAMS.expires]: expires });
    if (bound !== null) query.set(LINK_PARAMS.bind, 'ip');
    query.set(LINK_PARAMS.signature, this.signer.sign(payload(key, expires, bound)));
    const base = this.settings.publicUrl ?? this.settings.prefix;
    return `${base}${encodeKey(key)}?${query.toString()}`;
  }

  /** Throws a 403 `BAD_SIGNATURE` unless `query` holds a valid, unexpired signature of `key` for this client. */
  verify(key: string, query: URLSearchParams, clientAddress: string | undefined, now = Date.now()): void {
    const expires = query.get(LINK_PARAMS.expires);
    const signature = query.get(LINK_PARAMS.signature);
    if (expires === null || signature === null) throw refused('This link is not signed');
    if (!/^\d{1,12}$/.test(expires) || !/^[A-Za-z0-9_-]{1,1024}$/.test(signature)) throw refused('This link is not valid');
    const bind = query.get(LINK_PARAMS.bind);
    if (bind !== null && bind !== 'ip') throw refused('This link is not valid');
    const bound = bind === 'ip' ? canonicalAddress(clientAddress) : null;
    if (!this.signer.verify(payload(key, expires, bound), signature)) throw refused('This link is not valid');
    // Checked after the signature, so that an expiry can only be reported for a link we made.
    if (Number(expires) * 1000 < now) throw refused('This link has expired');
  }
}

function refused(message: string): LazyContentError {
  return new LazyContentError('BAD_SIGNATURE', message);
}
