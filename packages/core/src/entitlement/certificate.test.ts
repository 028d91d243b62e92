import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ecFixture, fixture } from '../../../../test/fixtures/entitlement.js';
import { certificateDer, parseCertificate, readCertificate, type ParsedCertificate } from './certificate.js';
import { RHSM_PATH_TREE_OID, RHSM_VERSION_OID } from './rhsm.js';

const clientPem = fixture('x509/client.pem');
const clientDer = new X509Certificate(clientPem).raw;

function read(input: Parameters<typeof readCertificate>[0]): ParsedCertificate {
  const result = readCertificate(input);
  if (!result.ok) throw new Error(`expected a certificate, got ${result.kind}: ${result.detail}`);
  return result.certificate;
}

describe('reading a certificate from what a TLS socket or a proxy gives', () => {
  const expected = new X509Certificate(clientPem).fingerprint256.replace(/:/g, '').toLowerCase();

  it.each([
    ['PEM', clientPem],
    ['PEM with CRLF and surrounding whitespace', `\r\n  ${clientPem.replace(/\n/g, '\r\n')}  \n`],
    ['URL-encoded PEM (nginx $ssl_client_escaped_cert)', encodeURIComponent(clientPem)],
    ['URL-encoded PEM, only newlines escaped', clientPem.replace(/\n/g, '%0A')],
    ['one-line PEM with spaces (x509/un_urlencoded_cert.txt)', fixture('x509/un_urlencoded_cert.txt')],
    ['one-line PEM with tabs', clientPem.replace(/\n/g, '\t')],
    ['bare base64 DER', clientDer.toString('base64')],
    ['"X509 CERTIFICATE" PEM label', clientPem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '-----$1 X509 CERTIFICATE-----')],
    ['DER buffer (getPeerCertificate().raw)', clientDer],
    ['DER as a plain Uint8Array', new Uint8Array(clientDer)],
    ['PEM bytes in a Buffer', Buffer.from(clientPem)],
  ])('%s', (_name, input) => {
    expect(read(input).fingerprint).toBe(expected);
  });

  it('accepts the one-line PEM fixture as exactly x509/client.pem', () => {
    expect(certificateDer(fixture('x509/un_urlencoded_cert.txt')).equals(clientDer)).toBe(true);
  });

  it('takes the CERTIFICATE block of a file that starts with a private key (rhsm/uber.cert)', () => {
    const uber = fixture('rhsm/uber.cert');
    expect(uber.indexOf('PRIVATE KEY')).toBeLessThan(uber.indexOf('BEGIN CERTIFICATE'));
    expect(read(uber).subject).toBe('O=Default_Organization');
  });

  it('takes the first certificate of several', () => {
    const both = `${clientPem}\n${fixture('rhsm/katello-default-ca.crt')}`;
    expect(read(both).fingerprint).toBe(expected);
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['an empty string', ''],
    ['blanks', '  \n '],
    ["Apache's (null)", '(null)'],
    ['an empty buffer', Buffer.alloc(0)],
  ])('treats %s as no certificate', (_name, input) => {
    expect(readCertificate(input)).toMatchObject({ ok: false, kind: 'none' });
  });

  const body = clientPem.replace(/-----[A-Z ]+-----|\s/g, '');
  it.each([
    ['text', 'hello'],
    ['a PEM private key only', fixture('x509/client-key.pem')],
    ['a PEM without END line', clientPem.replace('-----END CERTIFICATE-----', '')],
    ['base64 with a bad character', `-----BEGIN CERTIFICATE-----${body.slice(0, 40)}*${body.slice(41)}-----END CERTIFICATE-----`],
    ['truncated base64', body.slice(0, 400)],
    ['truncated DER', clientDer.subarray(0, 300)],
    ['DER with trailing bytes', Buffer.concat([clientDer, Buffer.from([0])])],
    ['bad URL-encoding', '%E0%A4%A'],
    ['an ASN.1 SEQUENCE that is no certificate', Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])],
    ['a huge header', 'A'.repeat(2 * 1024 * 1024)],
  ])('reports %s as unreadable', (_name, input) => {
    expect(readCertificate(input)).toMatchObject({ ok: false, kind: 'unreadable' });
  });

  it('enforces the size limit', () => {
    expect(readCertificate(clientDer)).toMatchObject({ ok: true });
    expect(() => certificateDer(clientDer, { maxCertificateBytes: 100 })).toThrow(/too large/);
    expect(() => certificateDer(clientPem, { maxCertificateBytes: 100 })).toThrow(/too large/);
  });

  it('passes an already parsed certificate through', () => {
    const parsed = read(clientPem);
    expect(read(parsed)).toBe(parsed);
  });
});

describe('parseCertificate', () => {
  it('reads dates, names and fingerprint consistently with node:crypto', () => {
    const c = parseCertificate(Buffer.from(new X509Certificate(fixture('rhsm/v3/5527980418107729172.pem')).raw));
    expect(c.notBefore.toISOString()).toBe('2016-03-24T04:00:00.000Z');
    expect(c.notAfter.toISOString()).toBe('2048-06-01T00:00:00.000Z');
    expect(c.notAfter.getTime()).toBe(Date.parse(c.x509.validTo));
    expect(c.subject).toContain('O=Default_Organization');
    expect(c.fingerprint).toBe(c.x509.fingerprint256.replace(/:/g, '').toLowerCase());
  });

  it('reads the Red Hat extensions of a v3 certificate', () => {
    const c = read(fixture('rhsm/v3/4260035510644027985.pem'));
    expect(c.extensions.has(RHSM_VERSION_OID)).toBe(true);
    expect(c.extensions.has(RHSM_PATH_TREE_OID)).toBe(true);
    expect(c.extensions.get('2.5.29.15')?.critical).toBe(true);
    expect(c.extensions.get('2.5.29.19')?.critical).toBe(false);
  });

  it('reads an X.509 v1 certificate, which has no extensions', () => {
    expect(read(clientPem).extensions.size).toBe(0);
  });

  it('reads an EC certificate (node-forge pki would refuse its key) and a GeneralizedTime date', () => {
    const c = read(ecFixture('client.pem'));
    expect(c.x509.publicKey.asymmetricKeyType).toBe('ec');
    expect(c.notAfter.toISOString()).toBe('2100-01-01T00:00:00.000Z');
    expect(c.extensions.has(RHSM_PATH_TREE_OID)).toBe(true);
  });
});
