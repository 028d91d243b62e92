import { createHmac, createPrivateKey, createPublicKey, type KeyObject, sign, timingSafeEqual, verify } from 'node:crypto';

/**
 * Signs and verifies the payload of a streamer URL. The content side signs; the streamer verifies. An
 * implementation that only holds a public key cannot sign (`canSign` is false).
 */
export interface UrlSigner {
  readonly algorithm: string;
  readonly canSign: boolean;
  /** A base64url signature of `payload`. */
  sign(payload: string): string;
  /** Whether `signature` is a valid signature of `payload`; never throws on malformed input. */
  verify(payload: string, signature: string): boolean;
}

/** HMAC-SHA256 with a shared secret: the default, fast, and both sides hold the same secret. */
export class HmacUrlSigner implements UrlSigner {
  readonly algorithm = 'hmac-sha256';
  readonly canSign = true;

  constructor(private readonly secret: Buffer) {
    if (secret.length < 32) throw new TypeError('an HMAC signing secret must be at least 32 bytes');
  }

  sign(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  verify(payload: string, signature: string): boolean {
    const expected = createHmac('sha256', this.secret).update(payload).digest();
    const given = Buffer.from(signature, 'base64url');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

/**
 * RSA-SHA256 (PKCS#1 v1.5): the content side holds the private key, a streamer on another host only the
 * public key, so a compromised streamer cannot mint links.
 */
export class RsaUrlSigner implements UrlSigner {
  readonly algorithm = 'rsa-sha256';
  readonly canSign: boolean;
  private readonly privateKey: KeyObject | null;
  private readonly publicKey: KeyObject;

  /** `privateKey` (PEM) to sign and verify; `publicKey` (PEM) alone to verify only. */
  constructor(keys: { privateKey?: string | undefined; publicKey?: string | undefined }) {
    this.privateKey = keys.privateKey ? createPrivateKey(keys.privateKey) : null;
    if (this.privateKey && this.privateKey.asymmetricKeyType !== 'rsa') throw new TypeError('the signing key must be an RSA key');
    const pub = keys.publicKey ? createPublicKey(keys.publicKey) : this.privateKey ? createPublicKey(this.privateKey) : null;
    if (!pub) throw new TypeError('an RSA URL signer needs a private key (to sign) or a public key (to verify)');
    if (pub.asymmetricKeyType !== 'rsa') throw new TypeError('the verification key must be an RSA key');
    this.publicKey = pub;
    this.canSign = this.privateKey !== null;
  }

  sign(payload: string): string {
    if (!this.privateKey) throw new Error('this URL signer holds only a public key and cannot sign');
    return sign('sha256', Buffer.from(payload), this.privateKey).toString('base64url');
  }

  verify(payload: string, signature: string): boolean {
    try {
      return verify('sha256', Buffer.from(payload), this.publicKey, Buffer.from(signature, 'base64url'));
    } catch {
      return false;
    }
  }
}
