import { describe, expect, it } from 'vitest';
import { ecFixture, fixture, FIXTURE_NOW } from '../../../../test/fixtures/entitlement.js';
import { readCertificate, type ParsedCertificate } from './certificate.js';
import { CaBundleError, TrustStore } from './trust.js';

const katello = fixture('rhsm/katello-default-ca.crt');
const plainCa = fixture('x509/ca.pem');
const ecCa = ecFixture('ca.pem');

function cert(pem: string): ParsedCertificate {
  const r = readCertificate(pem);
  if (!r.ok) throw new Error(r.detail);
  return r.certificate;
}

const at = (iso: string) => Date.parse(iso);

describe('TrustStore.verify', () => {
  const rhsm = TrustStore.fromPem(katello);

  it.each(['rhsm/v1/159442575569388840.pem', 'rhsm/v1/1514454871848760713.pem', 'rhsm/v3/4260035510644027985.pem', 'rhsm/v3/5527980418107729172.pem', 'rhsm/uber.cert'])(
    'trusts %s, signed by the Katello CA',
    (file) => {
      expect(rhsm.verify(cert(fixture(file)), FIXTURE_NOW)).toEqual({ allowed: true });
    },
  );

  it('refuses a certificate signed by another CA as untrusted', () => {
    expect(rhsm.verify(cert(fixture('rhsm/untrusted_cert.pem')), FIXTURE_NOW)).toMatchObject({ allowed: false, reason: 'untrusted' });
  });

  it('refuses a trusted certificate past its notAfter as expired', () => {
    expect(rhsm.verify(cert(fixture('rhsm/trusted_but_expired.pem')), FIXTURE_NOW)).toMatchObject({ allowed: false, reason: 'expired' });
  });

  it('refuses a certificate before its notBefore as not yet valid', () => {
    const c = cert(fixture('rhsm/v3/5527980418107729172.pem'));
    expect(rhsm.verify(c, at('2016-03-24T03:59:59Z'))).toMatchObject({ allowed: false, reason: 'not-yet-valid' });
    expect(rhsm.verify(c, at('2048-06-01T00:00:01Z'))).toMatchObject({ allowed: false, reason: 'expired' });
  });

  it('checks the validity at the given clock, not at the real time', () => {
    const expired = cert(fixture('rhsm/trusted_but_expired.pem'));
    expect(rhsm.verify(expired, at('2020-03-10T00:00:00Z'))).toEqual({ allowed: true });
  });

  it('refuses when the signing CA itself is outside its validity (Katello CA ends in 2038)', () => {
    const uber = cert(fixture('rhsm/uber.cert'));
    expect(rhsm.verify(uber, at('2040-01-01T00:00:00Z'))).toMatchObject({ allowed: false, reason: 'untrusted' });
  });

  it('verifies plain X.509 client certificates to their CA (an X.509 v1 root without extensions)', () => {
    const plain = TrustStore.fromPem(plainCa);
    expect(plain.verify(cert(fixture('x509/client.pem')), FIXTURE_NOW)).toEqual({ allowed: true });
    expect(plain.verify(cert(fixture('x509/untrusted_client.pem')), FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
    expect(plain.verify(cert(fixture('rhsm/uber.cert')), FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
    expect(rhsm.verify(cert(fixture('x509/client.pem')), FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
  });

  it('accepts several certificates per bundle and several bundles', () => {
    for (const store of [TrustStore.fromPem(`${katello}\n${plainCa}`), TrustStore.fromPem([katello, plainCa])]) {
      expect(store.size).toBe(2);
      expect(store.verify(cert(fixture('x509/client.pem')), FIXTURE_NOW)).toEqual({ allowed: true });
      expect(store.verify(cert(fixture('rhsm/uber.cert')), FIXTURE_NOW)).toEqual({ allowed: true });
      expect(store.verify(cert(fixture('rhsm/untrusted_cert.pem')), FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
    }
  });

  it('verifies EC signatures with node:crypto', () => {
    const ec = TrustStore.fromPem(ecCa);
    expect(ec.verify(cert(ecFixture('client.pem')), FIXTURE_NOW)).toEqual({ allowed: true });
    expect(rhsm.verify(cert(ecFixture('client.pem')), FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
    expect(ec.verify(cert(fixture('rhsm/uber.cert')), FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
  });

  it('never takes a CA:FALSE certificate of the bundle as an issuer', () => {
    const store = TrustStore.fromPem([ecCa, ecFixture('not-a-ca.pem')]);
    expect(store.verify(cert(ecFixture('not-a-ca.pem')), FIXTURE_NOW)).toEqual({ allowed: true });
    expect(store.verify(cert(ecFixture('signed-by-not-a-ca.pem')), FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
  });

  it('refuses a certificate whose signature was tampered with, or whose body was', () => {
    const good = cert(fixture('rhsm/v3/4260035510644027985.pem'));
    const badSignature = Buffer.from(good.der);
    badSignature[badSignature.length - 10]! ^= 0x01;
    const badBody = Buffer.from(good.der);
    const at = badBody.indexOf('Default_Organization');
    badBody[at]! ^= 0x20; // "default_Organization": same length, still a valid certificate structure
    for (const der of [badSignature, badBody]) {
      const r = readCertificate(der);
      expect(r.ok).toBe(true);
      if (r.ok) expect(rhsm.verify(r.certificate, FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
    }
  });

  it('gives the same answer from its cache', () => {
    const c = cert(fixture('rhsm/untrusted_cert.pem'));
    expect(rhsm.verify(c, FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
    expect(rhsm.verify(c, FIXTURE_NOW)).toMatchObject({ reason: 'untrusted' });
  });
});

describe('TrustStore.fromPem refuses unusable bundles at start-up', () => {
  it.each([
    ['an empty string', '', /no "-----BEGIN CERTIFICATE-----"/],
    ['a file path', '/etc/pki/katello/certs/katello-default-ca.crt', /file path/],
    ['a private key', fixture('x509/client-key.pem'), /no "-----BEGIN CERTIFICATE-----"/],
    ['garbage in a block', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', /cannot be read/],
    ['an unterminated block', '-----BEGIN CERTIFICATE-----\nAAAA\n', /END/],
    ['only certificates that may not sign', ecFixture('not-a-ca.pem'), /may sign/],
    ['an empty list', [], /no CA bundle/],
  ])('%s', (_name, bundle, message) => {
    expect(() => TrustStore.fromPem(bundle)).toThrow(CaBundleError);
    expect(() => TrustStore.fromPem(bundle)).toThrow(message);
  });

  it('names which bundle of several is wrong', () => {
    expect(() => TrustStore.fromPem([katello, 'nope'])).toThrow(/CA bundle 2/);
  });
});
