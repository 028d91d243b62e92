import { createHash, X509Certificate } from 'node:crypto';
import { Asn1Type, children, isContext, isUniversal, parseDer, primitiveBytes, readOid, readTime } from './asn1.js';

/**
 * A client certificate as it reaches the guard: the DER bytes from `tlsSocket.getPeerCertificate().raw`, or the
 * value of a header set by a trusted proxy (PEM; URL-encoded PEM as nginx's `$ssl_client_escaped_cert`; PEM on
 * one line with spaces for newlines; bare base64 DER), or a certificate already read. Empty, `undefined`,
 * `null` and Apache's `(null)` mean "no certificate".
 */
export type CertificateInput = string | Uint8Array | ParsedCertificate | null | undefined;

export interface CertificateExtension {
  critical: boolean;
  /** The DER bytes inside `extnValue` (the extension's own encoding, without the outer OCTET STRING). */
  value: Buffer;
}

/** A client certificate, read once: what policies and callbacks are given. */
export interface ParsedCertificate {
  readonly der: Buffer;
  /** SHA-256 of the DER bytes, lowercase hex: the key of every cache. */
  readonly fingerprint: string;
  readonly subject: string;
  readonly issuer: string;
  /** Serial number in uppercase hex, as node:crypto gives it. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Extensions by dotted OID. */
  readonly extensions: ReadonlyMap<string, CertificateExtension>;
  /** node:crypto's view of the certificate, for signature checks and anything else a callback needs. */
  readonly x509: X509Certificate;
}

export interface CertificateLimits {
  /** Largest certificate accepted, in DER bytes. @default 262144 (256 KiB) */
  maxCertificateBytes?: number;
}

export const certificateDefaults = {
  maxCertificateBytes: 256 * 1024,
} satisfies Required<CertificateLimits>;

/** Why a certificate input could not be read; `kind: 'none'` means nothing was sent. */
export class CertificateReadError extends Error {
  override readonly name = 'CertificateReadError';
  constructor(
    readonly kind: 'none' | 'unreadable',
    message: string,
  ) {
    super(message);
  }
}

export type ReadResult =
  | { ok: true; certificate: ParsedCertificate }
  | { ok: false; kind: 'none' | 'unreadable'; detail: string };

const PEM_LABELS = ['CERTIFICATE', 'X509 CERTIFICATE'];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const NO_CERTIFICATE = new Set(['', '(null)', '-']);

/**
 * Turns a certificate input into DER bytes, without parsing the certificate. Throws a CertificateReadError.
 * Of several PEM blocks the first CERTIFICATE is taken (a file may hold a key first, as `uber.cert` does).
 */
export function certificateDer(input: string | Uint8Array, limits: CertificateLimits = {}): Buffer {
  const maxBytes = limits.maxCertificateBytes ?? certificateDefaults.maxCertificateBytes;
  if (typeof input !== 'string') {
    if (input.byteLength === 0) throw new CertificateReadError('none', 'empty certificate');
    // A DER certificate starts with a SEQUENCE tag; anything else is taken for PEM text.
    if (input[0] === 0x30) {
      if (input.byteLength > maxBytes) throw new CertificateReadError('unreadable', 'certificate too large');
      return Buffer.from(input);
    }
    if (input.byteLength > maxBytes * 4) throw new CertificateReadError('unreadable', 'certificate too large');
    return pemToDer(Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('latin1'), maxBytes);
  }
  // URL-encoding triples the size, PEM adds a third: bound the text before any work on it.
  if (input.length > maxBytes * 4) throw new CertificateReadError('unreadable', 'certificate too large');
  return pemToDer(input, maxBytes);
}

function pemToDer(text: string, maxBytes: number): Buffer {
  let s = text.trim();
  if (NO_CERTIFICATE.has(s)) throw new CertificateReadError('none', 'empty certificate');
  if (s.includes('%')) {
    try {
      s = decodeURIComponent(s).trim();
    } catch {
      throw new CertificateReadError('unreadable', 'invalid URL-encoding');
    }
  }
  let body = s;
  if (s.includes('-----BEGIN')) {
    // indexOf rather than one regular expression over the text: linear time on any input.
    let found: { start: number; label: string } | undefined;
    for (const label of PEM_LABELS) {
      const start = s.indexOf(`-----BEGIN ${label}-----`);
      if (start !== -1 && (found === undefined || start < found.start)) found = { start, label };
    }
    if (found === undefined) throw new CertificateReadError('unreadable', 'no CERTIFICATE block in PEM');
    const from = found.start + `-----BEGIN ${found.label}-----`.length;
    const end = s.indexOf(`-----END ${found.label}-----`, from);
    if (end === -1) throw new CertificateReadError('unreadable', 'unterminated PEM block');
    body = s.slice(from, end);
  }
  const base64 = body.replace(/\s+/g, '');
  if (base64.length === 0 || base64.length % 4 !== 0 || !BASE64.test(base64)) {
    throw new CertificateReadError('unreadable', 'invalid base64');
  }
  const der = Buffer.from(base64, 'base64');
  if (der.length > maxBytes) throw new CertificateReadError('unreadable', 'certificate too large');
  return der;
}

/**
 * Reads an X.509 certificate from DER. node:crypto must accept it (it does the signature checks later), and
 * node-forge reads the dates and the extensions (the Red Hat entitlement data lives in private extensions
 * that node:crypto does not expose). Throws a CertificateReadError.
 */
export function parseCertificate(der: Buffer): ParsedCertificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch {
    throw new CertificateReadError('unreadable', 'not an X.509 certificate');
  }
  let fields: { notBefore: Date; notAfter: Date; extensions: Map<string, CertificateExtension> };
  try {
    fields = readTbsFields(der);
  } catch (err) {
    throw new CertificateReadError('unreadable', `malformed certificate: ${(err as Error).message}`);
  }
  return {
    der,
    fingerprint: createHash('sha256').update(der).digest('hex'),
    subject: x509.subject,
    issuer: x509.issuer,
    serialNumber: x509.serialNumber,
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
    extensions: fields.extensions,
    x509,
  };
}

/** Reads any certificate input; never throws. */
export function readCertificate(input: CertificateInput, limits: CertificateLimits = {}): ReadResult {
  if (input === null || input === undefined) return { ok: false, kind: 'none', detail: 'no certificate' };
  if (isParsedCertificate(input)) return { ok: true, certificate: input };
  try {
    return { ok: true, certificate: parseCertificate(certificateDer(input, limits)) };
  } catch (err) {
    if (err instanceof CertificateReadError) return { ok: false, kind: err.kind, detail: err.message };
    return { ok: false, kind: 'unreadable', detail: 'unexpected error while reading the certificate' };
  }
}

export function isParsedCertificate(value: unknown): value is ParsedCertificate {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Uint8Array) &&
    (value as ParsedCertificate).x509 instanceof X509Certificate &&
    Buffer.isBuffer((value as ParsedCertificate).der) &&
    (value as ParsedCertificate).extensions instanceof Map
  );
}

// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity, subject,
//   subjectPublicKeyInfo, [1] issuerUniqueID OPTIONAL, [2] subjectUniqueID OPTIONAL, [3] extensions OPTIONAL }
function readTbsFields(der: Buffer) {
  const root = parseDer(der);
  if (!isUniversal(root, Asn1Type.SEQUENCE)) throw new Error('certificate is not a SEQUENCE');
  const tbs = children(root)[0];
  if (!isUniversal(tbs, Asn1Type.SEQUENCE)) throw new Error('tbsCertificate is not a SEQUENCE');
  const fields = children(tbs);
  let i = isContext(fields[0], 0) ? 1 : 0;
  i += 3; // serialNumber, signature, issuer
  const validity = fields[i];
  if (!isUniversal(validity, Asn1Type.SEQUENCE)) throw new Error('validity is not a SEQUENCE');
  const [nb, na] = children(validity);
  const notBefore = readTime(nb);
  const notAfter = readTime(na);
  const extensions = new Map<string, CertificateExtension>();
  const wrapper = fields.slice(i + 3).find((f) => isContext(f, 3));
  if (wrapper) {
    const list = children(wrapper)[0];
    if (!isUniversal(list, Asn1Type.SEQUENCE)) throw new Error('extensions are not a SEQUENCE');
    for (const ext of children(list)) {
      if (!isUniversal(ext, Asn1Type.SEQUENCE)) throw new Error('extension is not a SEQUENCE');
      const parts = children(ext);
      const oid = readOid(parts[0]);
      let critical = false;
      let valueNode = parts[1];
      if (isUniversal(valueNode, Asn1Type.BOOLEAN)) {
        critical = primitiveBytes(valueNode)[0] !== 0;
        valueNode = parts[2];
      }
      if (!isUniversal(valueNode, Asn1Type.OCTETSTRING)) throw new Error('extension value is not an OCTET STRING');
      // RFC 5280: a certificate must not include more than one instance of an extension.
      if (extensions.has(oid)) throw new Error('duplicate extension');
      extensions.set(oid, { critical, value: primitiveBytes(valueNode) });
    }
  }
  return { notBefore, notAfter, extensions };
}
