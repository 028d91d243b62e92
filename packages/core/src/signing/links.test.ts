import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LazyContentError } from '../errors.js';
import { encodeKey, LINK_PARAMS, StreamerLinks } from './links.js';
import { HmacUrlSigner, RsaUrlSigner } from './url-signer.js';

const settings = { prefix: '/_lazy/stream/', expiresInSeconds: 90, bindClientAddress: false };
const now = Date.UTC(2026, 10, 30, 12, 0, 0);
const hmac = new StreamerLinks(new HmacUrlSigner(randomBytes(32)), settings);

function parse(location: string): { key: string; query: URLSearchParams } {
  const url = new URL(location, 'http://127.0.0.1');
  return { key: decodeURIComponent(url.pathname.slice('/_lazy/stream/'.length)), query: url.searchParams };
}

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LazyContentError);
    expect((err as LazyContentError).status).toBe(403);
    expect((err as LazyContentError).code).toBe('BAD_SIGNATURE');
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('StreamerLinks', () => {
  it('makes a relative link to the streamer prefix that verifies', () => {
    const location = hmac.create('repo/Packages/a b.rpm', '127.0.0.1', now);
    expect(location).toMatch(/^\/_lazy\/stream\/repo\/Packages\/a%20b\.rpm\?lc-expires=\d+&lc-signature=[\w-]+$/);
    const { key, query } = parse(location);
    expect(key).toBe('repo/Packages/a b.rpm');
    expect(() => hmac.verify(key, query, '10.9.9.9', now + 89_000)).not.toThrow();
  });

  it('uses publicUrl as an absolute base when set', () => {
    const links = new StreamerLinks(new HmacUrlSigner(randomBytes(32)), { ...settings, publicUrl: 'https://streamer.example.test:8443/_lazy/stream/' });
    expect(links.create('a/b', undefined, now)).toMatch(/^https:\/\/streamer\.example\.test:8443\/_lazy\/stream\/a\/b\?lc-expires=/);
  });

  it('refuses an expired link', () => {
    const { key, query } = parse(hmac.create('a', undefined, now));
    expect(refusal(() => hmac.verify(key, query, undefined, now + 91_000))).toMatch(/expired/);
  });

  it('refuses a link without signature or expiry', () => {
    const { key, query } = parse(hmac.create('a', undefined, now));
    const noSig = new URLSearchParams(query);
    noSig.delete(LINK_PARAMS.signature);
    expect(refusal(() => hmac.verify(key, noSig, undefined, now))).toMatch(/not signed/);
    const noExp = new URLSearchParams(query);
    noExp.delete(LINK_PARAMS.expires);
    expect(refusal(() => hmac.verify(key, noExp, undefined, now))).toMatch(/not signed/);
  });

  it('refuses a forged, truncated or re-encoded signature', () => {
    const { key, query } = parse(hmac.create('a', undefined, now));
    const sig = query.get(LINK_PARAMS.signature)!;
    for (const bad of [sig.slice(0, -1), sig.slice(0, 10), `${sig}A`, sig.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')), '', 'a+b/c=']) {
      const q = new URLSearchParams(query);
      q.set(LINK_PARAMS.signature, bad);
      expect(refusal(() => hmac.verify(key, q, undefined, now)), bad).toMatch(/not (valid|signed)/);
    }
  });

  it('refuses a link moved to another path or given a later expiry', () => {
    const { query } = parse(hmac.create('repo/a.rpm', undefined, now));
    expect(refusal(() => hmac.verify('repo/b.rpm', query, undefined, now))).toMatch(/not valid/);
    const later = new URLSearchParams(query);
    later.set(LINK_PARAMS.expires, String(Number(query.get(LINK_PARAMS.expires)) + 3600));
    expect(refusal(() => hmac.verify('repo/a.rpm', later, undefined, now))).toMatch(/not valid/);
  });

  it('refuses a link signed with another secret', () => {
    const other = new StreamerLinks(new HmacUrlSigner(randomBytes(32)), settings);
    const { key, query } = parse(other.create('a', undefined, now));
    expect(refusal(() => hmac.verify(key, query, undefined, now))).toMatch(/not valid/);
  });

  it('binds a link to the client address when asked, treating IPv4-mapped IPv6 as the same client', () => {
    const bound = new StreamerLinks(new HmacUrlSigner(randomBytes(32)), { ...settings, bindClientAddress: true });
    const { key, query } = parse(bound.create('a', '::ffff:127.0.0.5', now));
    expect(query.get(LINK_PARAMS.bind)).toBe('ip');
    expect(() => bound.verify(key, query, '127.0.0.5', now)).not.toThrow();
    expect(refusal(() => bound.verify(key, query, '127.0.0.6', now))).toMatch(/not valid/);
    const stripped = new URLSearchParams(query);
    stripped.delete(LINK_PARAMS.bind);
    expect(refusal(() => bound.verify(key, stripped, '127.0.0.5', now))).toMatch(/not valid/);
  });

  it('encodes keys so that one decoding gives them back', () => {
    expect(encodeKey('a/%2e%2e/b c?#')).toBe('a/%252e%252e/b%20c%3F%23');
  });
});

describe('RSA-SHA256 links', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const priv = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const pub = publicKey.export({ type: 'spki', format: 'pem' }).toString();

  it('signs with the private key and verifies with the public key alone', () => {
    const content = new StreamerLinks(new RsaUrlSigner({ privateKey: priv }), settings);
    const streamer = new StreamerLinks(new RsaUrlSigner({ publicKey: pub }), settings);
    const { key, query } = parse(content.create('a/b.rpm', undefined, now));
    expect(() => streamer.verify(key, query, undefined, now)).not.toThrow();
    expect(refusal(() => streamer.verify('a/c.rpm', query, undefined, now))).toMatch(/not valid/);
  });

  it('a verify-only signer cannot sign', () => {
    const verifier = new RsaUrlSigner({ publicKey: pub });
    expect(verifier.canSign).toBe(false);
    expect(() => verifier.sign('x')).toThrow(/cannot sign/);
  });

  it('refuses keys that are not RSA', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => new RsaUrlSigner({ privateKey: ec })).toThrow(/RSA/);
  });
});

describe('HmacUrlSigner', () => {
  it('refuses a short secret', () => {
    expect(() => new HmacUrlSigner(Buffer.alloc(16))).toThrow(/32 bytes/);
  });
});
