import { LRUCache } from 'lru-cache';
import { Asn1Type, children, isUniversal, parseDer, primitiveBytes } from './asn1.js';
import { CertificateReadError, parseCertificate, type ParsedCertificate } from './certificate.js';
import { allow, deny, type Verdict } from './verdict.js';

const BASIC_CONSTRAINTS = '2.5.29.19';
const KEY_USAGE = '2.5.29.15';

interface Anchor {
  certificate: ParsedCertificate;
  /** Allowed to sign certificates: basicConstraints is absent (an X.509 v1 root) or says CA. */
  canSign: boolean;
}

/** A CA bundle that is not usable; thrown at start-up, never per request. */
export class CaBundleError extends Error {
  override readonly name = 'CaBundleError';
}

/**
 * The certificates a client certificate may be signed by. Every certificate of the configured bundle(s) is a
 * trust anchor, intermediates included: proxies forward only the client certificate, not its chain, so the
 * client certificate must be signed directly by a certificate of the bundle.
 *
 * Signatures are checked with node:crypto (`X509Certificate.checkIssued` and `verify`), which handles RSA,
 * RSA-PSS, EC and EdDSA alike; node-forge only verifies RSA, and its role here is reading extensions.
 */
export class TrustStore {
  private readonly anchors: Anchor[];
  /** Fingerprint of a client certificate → index of the anchor that signed it, or -1. */
  private readonly issuers: LRUCache<string, number>;

  private constructor(anchors: Anchor[], cacheEntries: number) {
    this.anchors = anchors;
    this.issuers = new LRUCache({ max: Math.max(1, cacheEntries) });
  }

  /** Reads one or more PEM bundles (several certificates each allowed). Throws a CaBundleError. */
  static fromPem(bundles: string | readonly string[], options: { cacheEntries?: number } = {}): TrustStore {
    const list = typeof bundles === 'string' ? [bundles] : bundles;
    if (list.length === 0) throw new CaBundleError('no CA bundle given');
    const anchors: Anchor[] = [];
    list.forEach((bundle, index) => {
      const where = list.length > 1 ? `CA bundle ${index + 1}` : 'the CA bundle';
      if (typeof bundle !== 'string') throw new CaBundleError(`${where} is not a string of PEM text`);
      const blocks = pemCertificates(bundle);
      if (blocks.length === 0) {
        const hint = /^[^\n-]*[/\\][^\n]*$/.test(bundle.trim()) ? ' (it looks like a file path: pass the file\'s text, e.g. fs.readFileSync(path, "utf8"))' : '';
        throw new CaBundleError(`${where} holds no "-----BEGIN CERTIFICATE-----" block${hint}`);
      }
      blocks.forEach((der, n) => {
        let certificate: ParsedCertificate;
        try {
          certificate = parseCertificate(der);
        } catch (err) {
          const why = err instanceof CertificateReadError ? err.message : 'unreadable';
          throw new CaBundleError(`certificate ${n + 1} of ${where} cannot be read: ${why}`);
        }
        anchors.push({ certificate, canSign: canSign(certificate) });
      });
    });
    if (!anchors.some((a) => a.canSign)) throw new CaBundleError('no certificate of the CA bundle may sign certificates (all have CA:FALSE)');
    return new TrustStore(anchors, options.cacheEntries ?? 1000);
  }

  /** How many certificates the bundle(s) hold. */
  get size(): number {
    return this.anchors.length;
  }

  /**
   * Checks that `certificate` is signed by an anchor, then that it and its signer are valid at `now` (ms since
   * the epoch). Never throws. Refusals: `untrusted`, `expired`, `not-yet-valid`.
   */
  verify(certificate: ParsedCertificate, now: number): Verdict {
    let index = this.issuers.get(certificate.fingerprint);
    if (index === undefined) {
      index = this.anchors.findIndex((anchor) => signedBy(certificate, anchor));
      this.issuers.set(certificate.fingerprint, index);
    }
    const anchor = this.anchors[index];
    if (anchor === undefined) return deny('untrusted', 'not signed by a certificate of the CA bundle');
    if (now < certificate.notBefore.getTime()) return deny('not-yet-valid');
    if (now > certificate.notAfter.getTime()) return deny('expired');
    const ca = anchor.certificate;
    if (now < ca.notBefore.getTime() || now > ca.notAfter.getTime()) {
      return deny('untrusted', 'the signing CA certificate is outside its validity period');
    }
    return allow();
  }
}

function signedBy(certificate: ParsedCertificate, anchor: Anchor): boolean {
  if (!anchor.canSign) return false;
  try {
    return certificate.x509.checkIssued(anchor.certificate.x509) && certificate.x509.verify(anchor.certificate.x509.publicKey);
  } catch {
    // A signature or key algorithm OpenSSL cannot handle is an unverifiable signature, not a crash.
    return false;
  }
}

/** basicConstraints absent (X.509 v1 roots) or cA true; keyUsage, when present, must allow keyCertSign. */
function canSign(certificate: ParsedCertificate): boolean {
  try {
    const bc = certificate.extensions.get(BASIC_CONSTRAINTS);
    if (bc) {
      const seq = parseDer(bc.value);
      if (!isUniversal(seq, Asn1Type.SEQUENCE)) return false;
      const first = children(seq)[0];
      if (!isUniversal(first, Asn1Type.BOOLEAN) || primitiveBytes(first)[0] === 0) return false;
    }
    const ku = certificate.extensions.get(KEY_USAGE);
    if (ku) {
      const bits = parseDer(ku.value);
      if (!isUniversal(bits, Asn1Type.BITSTRING)) return false;
      // keyCertSign is bit 5: in the first content byte (after the unused-bits count), mask 0x04.
      const firstByte = primitiveBytes(bits)[1] ?? 0;
      if ((firstByte & 0x04) === 0) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** DER bytes of every CERTIFICATE block in a PEM text (other blocks, such as keys, are skipped). */
function pemCertificates(pem: string): Buffer[] {
  const out: Buffer[] = [];
  const begin = '-----BEGIN CERTIFICATE-----';
  const end = '-----END CERTIFICATE-----';
  let at = pem.indexOf(begin);
  while (at !== -1) {
    const stop = pem.indexOf(end, at + begin.length);
    if (stop === -1) throw new CaBundleError('a CERTIFICATE block of the CA bundle has no END line');
    out.push(Buffer.from(pem.slice(at + begin.length, stop).replace(/\s+/g, ''), 'base64'));
    at = pem.indexOf(begin, stop + end.length);
  }
  return out;
}
