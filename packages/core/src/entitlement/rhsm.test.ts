import { describe, expect, it } from 'vitest';
import { derOctetString, derUtf8String, ecFixture, fixture, fixtureBytes, withExtensions } from '../../../../test/fixtures/entitlement.js';
import { readCertificate, type ParsedCertificate } from './certificate.js';
import { entitlementFromData, entitlementToData, entitles, readRhsmEntitlement, RHSM_PATH_TREE_OID, RHSM_VERSION_OID, type RhsmEntitlement } from './rhsm.js';

function cert(pem: string): ParsedCertificate {
  const r = readCertificate(pem);
  if (!r.ok) throw new Error(r.detail);
  return r.certificate;
}

function paths(e: RhsmEntitlement): string[] {
  if (e.kind !== 'paths') throw new Error(`expected paths, got ${e.kind}`);
  return e.tree.paths();
}

const utf8String = derUtf8String;
const octetString = derOctetString;

const ORG = '/Default_Organization/Library';

describe('readRhsmEntitlement on the fixtures README table', () => {
  it('v1 159442575569388840.pem: one custom path', () => {
    const e = readRhsmEntitlement(cert(fixture('rhsm/v1/159442575569388840.pem')));
    expect(e).toMatchObject({ kind: 'paths', version: 1 });
    expect(paths(e)).toEqual([`${ORG}/custom/foo/foo`]);
  });

  it('v1 1514454871848760713.pem: the two RHEL 7 paths of the README, and a third it does not list', () => {
    // The README names two; the certificate has three download paths (openssl x509 -text shows content
    // 2456, 3030 and 2808, the last being Software Collections).
    const e = readRhsmEntitlement(cert(fixture('rhsm/v1/1514454871848760713.pem')));
    expect(e).toMatchObject({ kind: 'paths', version: 1 });
    expect(paths(e)).toEqual([
      `${ORG}/content/dist/rhel/server/7/$releasever/$basearch/os`,
      `${ORG}/content/dist/rhel/server/7/$releasever/$basearch/rhscl/1/os`,
      `${ORG}/content/dist/rhel/server/7/7Server/$basearch/extras/os`,
    ]);
  });

  it('v3 4260035510644027985.pem: one custom path', () => {
    const e = readRhsmEntitlement(cert(fixture('rhsm/v3/4260035510644027985.pem')));
    expect(e).toMatchObject({ kind: 'paths', version: 3 });
    expect(paths(e)).toEqual([`${ORG}/custom/foo/foo`]);
  });

  it('v3 5527980418107729172.pem: four paths, among them the listed two', () => {
    const e = readRhsmEntitlement(cert(fixture('rhsm/v3/5527980418107729172.pem')));
    expect(e).toMatchObject({ kind: 'paths', version: 3 });
    const list = paths(e);
    expect(list).toHaveLength(4);
    expect(list).toContain(`${ORG}/content/dist/rhel8/$releasever/x86_64/baseos/os`);
    expect(list).toContain(`${ORG}/content/dist/rhel/server/7/$releasever/$basearch/os`);
  });

  it('uber.cert: /Default_Organization (it carries a v1 download path, not a path tree)', () => {
    const e = readRhsmEntitlement(cert(fixture('rhsm/uber.cert')));
    expect(paths(e)).toEqual(['/Default_Organization']);
  });

  it('x509/client.pem: no entitlement at all', () => {
    expect(readRhsmEntitlement(cert(fixture('x509/client.pem')))).toEqual({ kind: 'none' });
  });

  it('the EC client: the v3 tree of entitlement_data.bin', () => {
    expect(paths(readRhsmEntitlement(cert(ecFixture('client.pem'))))).toEqual(['/foo/path', '/foo/path/always/$releasever', '/foo/path/never']);
  });

  it('a version 3 certificate with garbage for a path tree: unreadable', () => {
    expect(readRhsmEntitlement(cert(ecFixture('garbage-entitlement.pem')))).toMatchObject({ kind: 'unreadable' });
  });
});

describe('verdicts of the fixtures README', () => {
  const v3 = readRhsmEntitlement(cert(fixture('rhsm/v3/5527980418107729172.pem')));
  const v1 = readRhsmEntitlement(cert(fixture('rhsm/v1/1514454871848760713.pem')));
  const uber = readRhsmEntitlement(cert(fixture('rhsm/uber.cert')));

  it.each([
    [`${ORG}/content/dist/rhel8/8/x86_64/baseos/os/repodata/repomd.xml`, true],
    [`${ORG}/content/dist/rhel/server/7/7.4/x86_64/os/Packages/a.rpm`, true],
    [`${ORG}/content/dist/rhel8`, false],
    ['/this-is-not-a-valid-base-path/x', false],
    [`${ORG}/content/dist/rhel8/8/aarch64/baseos/os/x.rpm`, false],
  ])('5527980418107729172.pem: %s → %s', (path, allowed) => {
    expect(entitles(v3, path)).toBe(allowed);
  });

  it.each([
    [`${ORG}/content/dist/rhel/server/7/7Server/x86_64/extras/os/x.rpm`, true],
    [`${ORG}/content/dist/rhel/server/7/7Server/x86_64/extras/os2/x.rpm`, false],
    [`${ORG}/content/dist/rhel/server/7/7.9/x86_64/os/x.rpm`, true],
    [`${ORG}/content/dist/rhel/server/7/7Server/x86_64`, false],
  ])('1514454871848760713.pem (v1): %s → %s', (path, allowed) => {
    expect(entitles(v1, path)).toBe(allowed);
  });

  it('applies the listing rule to v3 trees only', () => {
    expect(entitles(v3, `${ORG}/content/dist/rhel8/listing`)).toBe(true);
    expect(entitles(v3, `${ORG}/content/dist/rhel8/8/listing`)).toBe(true);
    expect(entitles(v1, `${ORG}/content/dist/rhel/server/7/listing`)).toBe(false);
  });

  it('uber.cert allows everything below /Default_Organization and nothing else', () => {
    expect(entitles(uber, '/Default_Organization')).toBe(true);
    expect(entitles(uber, `${ORG}/anything/at/all.rpm`)).toBe(true);
    expect(entitles(uber, '/Default_Organization2/x')).toBe(false);
    expect(entitles(uber, '/Other_Organization/x')).toBe(false);
  });

  it('entitles nothing without paths', () => {
    expect(entitles({ kind: 'none' }, '/x')).toBe(false);
    expect(entitles({ kind: 'unreadable', detail: '' }, '/x')).toBe(false);
  });
});

describe('readRhsmEntitlement on odd extensions', () => {
  const base = cert(fixture('x509/client.pem'));
  const tree = fixtureBytes('pathtree/entitlement_data.bin');

  it('reads a path tree from any version ≥ 3', () => {
    for (const version of ['3.0', '3.4', '4', '10.1.2']) {
      const e = readRhsmEntitlement(withExtensions(base, { [RHSM_VERSION_OID]: utf8String(version), [RHSM_PATH_TREE_OID]: octetString(tree) }));
      expect(e).toMatchObject({ kind: 'paths', version: 3 });
    }
  });

  it('reads v1 paths when the version is below 3', () => {
    const e = readRhsmEntitlement(
      withExtensions(base, { [RHSM_VERSION_OID]: utf8String('1.0'), '1.3.6.1.4.1.2312.9.2.42.1.6': utf8String('/a/b') }),
    );
    expect(paths(e)).toEqual(['/a/b']);
  });

  it('entitles nothing for a v3 certificate without a path tree', () => {
    expect(readRhsmEntitlement(withExtensions(base, { [RHSM_VERSION_OID]: utf8String('3.4') }))).toEqual({ kind: 'none' });
  });

  it('ignores v1 paths that are empty, and entitles nothing with only those', () => {
    expect(readRhsmEntitlement(withExtensions(base, { '1.3.6.1.4.1.2312.9.2.1.1.6': utf8String('/') }))).toEqual({ kind: 'none' });
  });

  it.each([
    ['a version that is not a number', { [RHSM_VERSION_OID]: utf8String('three') }],
    ['a version that is not a string', { [RHSM_VERSION_OID]: octetString(Buffer.from('3.4')) }],
    ['a path tree that is a string, not an OCTET STRING', { [RHSM_VERSION_OID]: utf8String('3.4'), [RHSM_PATH_TREE_OID]: utf8String('x') }],
    ['a path tree with trailing DER bytes', { [RHSM_VERSION_OID]: utf8String('3.4'), [RHSM_PATH_TREE_OID]: Buffer.concat([octetString(tree), Buffer.from([0])]) }],
    ['a v1 path that is not DER', { '1.3.6.1.4.1.2312.9.2.7.1.6': Buffer.from('/raw/path') }],
    ['a v1 path that is not UTF-8', { '1.3.6.1.4.1.2312.9.2.7.1.6': Buffer.from([0x0c, 2, 0xff, 0xfe]) }],
  ])('reports %s as unreadable', (_name, extensions) => {
    expect(readRhsmEntitlement(withExtensions(base, extensions))).toMatchObject({ kind: 'unreadable' });
  });
});

describe('the cached form of an entitlement', () => {
  it('round-trips through JSON', () => {
    for (const file of ['rhsm/v1/1514454871848760713.pem', 'rhsm/v3/5527980418107729172.pem', 'x509/client.pem']) {
      const e = readRhsmEntitlement(cert(fixture(file)));
      const again = entitlementFromData(JSON.parse(JSON.stringify(entitlementToData(e))));
      expect(again.kind).toBe(e.kind);
      if (e.kind === 'paths') expect(paths(again)).toEqual(paths(e));
    }
  });

  it.each([null, {}, { kind: 'paths', version: 2, tree: { nodes: [] } }, { kind: 'paths', version: 3, tree: { nodes: [[['a', 5]]] } }])(
    'refuses malformed data %j',
    (data) => {
      expect(() => entitlementFromData(data)).toThrow();
    },
  );
});
