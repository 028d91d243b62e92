import forge from 'node-forge';

/**
 * Small DER helpers on top of node-forge's ASN.1 reader. The certificate is walked as plain ASN.1 rather than
 * through `forge.pki.certificateFromAsn1`, which refuses any public key that is not RSA: an EC client
 * certificate must still have its extensions read.
 */

export type Asn1 = forge.asn1.Asn1;

const { Class, Type } = forge.asn1;
export { Class as Asn1Class, Type as Asn1Type };

interface FromDerOptions {
  strict: boolean;
  parseAllBytes: boolean;
  decodeBitStrings: boolean;
  maxDepth: number;
}

// @types/node-forge only knows the old boolean `strict` argument; forge ≥ 1.3 takes an options object.
const fromDer = forge.asn1.fromDer as unknown as (bytes: forge.util.ByteStringBuffer, options: FromDerOptions) => Asn1;

/** Certificates and extension values nest a dozen levels at most; random bytes must not recurse deeply. */
const MAX_DEPTH = 32;

/** Parses exactly one DER value filling all of `bytes`; throws on anything else. */
export function parseDer(bytes: Uint8Array): Asn1 {
  const buffer = forge.util.createBuffer(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'));
  return fromDer(buffer, { strict: true, parseAllBytes: true, decodeBitStrings: false, maxDepth: MAX_DEPTH });
}

export function isUniversal(node: Asn1 | undefined, type: number): node is Asn1 {
  return node !== undefined && node.tagClass === Class.UNIVERSAL && node.type === type;
}

export function isContext(node: Asn1 | undefined, tag: number): node is Asn1 {
  return node !== undefined && node.tagClass === Class.CONTEXT_SPECIFIC && node.type === tag;
}

/** The children of a constructed value; throws when the value is primitive. */
export function children(node: Asn1): Asn1[] {
  if (!Array.isArray(node.value)) throw new Error('expected a constructed ASN.1 value');
  return node.value;
}

/** The raw bytes of a primitive value; throws when the value is constructed. */
export function primitiveBytes(node: Asn1): Buffer {
  if (typeof node.value !== 'string') throw new Error('expected a primitive ASN.1 value');
  return Buffer.from(node.value, 'latin1');
}

export function readOid(node: Asn1 | undefined): string {
  if (!isUniversal(node, Type.OID)) throw new Error('expected an OID');
  const bytes = primitiveBytes(node);
  // An OID ends on a byte without the continuation bit; forge would silently drop a dangling arc.
  if (bytes.length === 0 || (bytes[bytes.length - 1]! & 0x80) !== 0) throw new Error('malformed OID');
  return forge.asn1.derToOid(node.value as string);
}

export function readTime(node: Asn1 | undefined): Date {
  if (node === undefined || node.tagClass !== Class.UNIVERSAL || typeof node.value !== 'string') {
    throw new Error('expected a UTCTime or GeneralizedTime');
  }
  let date: Date;
  if (node.type === Type.UTCTIME) date = forge.asn1.utcTimeToDate(node.value);
  else if (node.type === Type.GENERALIZEDTIME) date = forge.asn1.generalizedTimeToDate(node.value);
  else throw new Error('expected a UTCTime or GeneralizedTime');
  if (!Number.isFinite(date.getTime())) throw new Error('malformed time');
  return date;
}

// ignoreBOM keeps a leading U+FEFF as a character, as python-rhsm's bytes.decode does.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A DER-encoded string value (UTF8String, PrintableString or IA5String), as Red Hat extensions carry them. */
export function readDerString(der: Uint8Array): string {
  const node = parseDer(der);
  if (
    node.tagClass !== Class.UNIVERSAL ||
    (node.type !== Type.UTF8 && node.type !== Type.PRINTABLESTRING && node.type !== Type.IA5STRING)
  ) {
    throw new Error('expected a string');
  }
  return utf8.decode(primitiveBytes(node));
}

/** The contents of a DER-encoded OCTET STRING. */
export function readDerOctetString(der: Uint8Array): Buffer {
  const node = parseDer(der);
  if (!isUniversal(node, Type.OCTETSTRING) || node.constructed) throw new Error('expected an OCTET STRING');
  return primitiveBytes(node);
}

/** Strict UTF-8 decoding: invalid sequences throw instead of turning into U+FFFD. */
export function decodeUtf8(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}
