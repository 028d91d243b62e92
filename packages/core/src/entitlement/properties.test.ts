import { X509Certificate } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { derOctetString, derUtf8String, fixture, fixtureBytes, FIXTURE_NOW, withExtensions } from '../../../../test/fixtures/entitlement.js';
import { encodePathTree } from '../../../../test/fixtures/pathtree-encoder.js';
import { readCertificate, type ParsedCertificate } from './certificate.js';
import { EntitlementGuard } from './guard.js';
import { decodePathTree, PathTree, PathTreeError } from './path-tree.js';
import { readRhsmEntitlement, RHSM_PATH_TREE_OID, RHSM_VERSION_OID } from './rhsm.js';
import { rhsmPolicy } from './policy.js';

// Inputs are bounded (a few KiB) so that each property runs in well under a second; a hang would show as the
// test timeout.

const katello = fixture('rhsm/katello-default-ca.crt');
const v3Pem = fixture('rhsm/v3/5527980418107729172.pem');
const v3Der = new X509Certificate(v3Pem).raw;

function cert(pem: string): ParsedCertificate {
  const r = readCertificate(pem);
  if (!r.ok) throw new Error(r.detail);
  return r.certificate;
}

const guard = new EntitlementGuard({ rules: [{ prefix: '/', ca: katello, policy: 'rhsm' }], now: () => FIXTURE_NOW });

/** Decoding either succeeds or fails with a PathTreeError, never anything else. */
function decodeOrRefuse(payload: Uint8Array): PathTree | null {
  try {
    return decodePathTree(payload);
  } catch (err) {
    if (!(err instanceof PathTreeError)) throw err;
    return null;
  }
}

const segment = fc.oneof(
  fc.constantFrom('foo', 'path', 'os', 'listing', '$releasever', '$basearch', 'x86_64', '7Server', '..', '.', ''),
  fc.string({ maxLength: 8 }),
);
const path = fc.array(segment, { maxLength: 12 }).map((s) => `/${s.join('/')}`);

describe('properties: the v3 decoder', () => {
  it('random bytes as a payload never throw anything but a PathTreeError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => void decodeOrRefuse(bytes)), { numRuns: 500 });
  });

  it('a valid word list, a plausible node count and random bits never throw anything but a PathTreeError', () => {
    const wordList = fc.array(fc.string({ maxLength: 10 }), { minLength: 1, maxLength: 30 }).map((w) => deflateSync(Buffer.from(w.map((x) => `${x}\0`).join(''))));
    fc.assert(
      fc.property(wordList, fc.integer({ min: 0, max: 40 }), fc.uint8Array({ maxLength: 512 }), (words, count, table) => {
        const tree = decodeOrRefuse(Buffer.concat([words, Buffer.from([count]), table]));
        if (tree) {
          // Whatever decoded is a usable tree.
          expect(() => tree.paths(100_000)).not.toThrow(TypeError);
          tree.matches('/a/b', { listing: true });
        }
      }),
      { numRuns: 500 },
    );
  });

  it('bit flips in a real payload never throw anything but a PathTreeError', () => {
    const real = fixtureBytes('pathtree/satellite_generated_data.bin');
    fc.assert(
      fc.property(fc.nat({ max: real.length * 8 - 1 }), fc.nat({ max: real.length * 8 - 1 }), (a, b) => {
        const copy = Buffer.from(real);
        copy[a >> 3]! ^= 1 << (a & 7);
        copy[b >> 3]! ^= 1 << (b & 7);
        decodeOrRefuse(copy);
      }),
      { numRuns: 500 },
    );
  });

  it('random path sets survive encode → decode exactly, and each path and its children match', () => {
    const word = fc.constantFrom('a', 'b', 'c', 'os', '$releasever', 'listing', 'x86_64', 'é');
    const paths = fc.uniqueArray(fc.array(word, { minLength: 1, maxLength: 6 }).map((s) => `/${s.join('/')}`), { minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(paths, (list) => {
        const expected = PathTree.fromPaths(list);
        const decoded = decodePathTree(encodePathTree(expected.data.nodes));
        expect(decoded.paths()).toEqual(expected.paths());
        for (const p of expected.paths()) {
          expect(decoded.matches(p, { listing: false })).toBe(true);
          expect(decoded.matches(`${p}/child/file.rpm`, { listing: false })).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('random paths against decoded trees never throw, and agree between v3 and the same v1 paths', () => {
    const trees = [
      decodePathTree(fixtureBytes('pathtree/satellite_generated_data.bin')),
      decodePathTree(fixtureBytes('pathtree/entitlement_data.bin')),
    ];
    fc.assert(
      fc.property(path, fc.string({ maxLength: 200 }), (p, raw) => {
        for (const tree of trees) {
          tree.matches(raw, { listing: true });
          const fromList = PathTree.fromPaths(tree.paths());
          expect(tree.matches(p, { listing: false })).toBe(fromList.matches(p, { listing: false }));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('properties: the public API never throws', () => {
  const base = cert(v3Pem);

  it('random bytes in the v3 extension are a refusal, never a crash', async () => {
    const policy = rhsmPolicy();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), fc.boolean(), async (bytes, wrap) => {
        const c = withExtensions(base, {
          [RHSM_VERSION_OID]: derUtf8String('3.4'),
          [RHSM_PATH_TREE_OID]: wrap ? derOctetString(bytes) : Buffer.from(bytes),
        });
        const e = readRhsmEntitlement(c);
        expect(['paths', 'none', 'unreadable']).toContain(e.kind);
        const v = await policy.check({ ...c, fingerprint: `${Math.random()}` }, '/Default_Organization/x');
        expect(v.allowed === false || e.kind === 'paths').toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes in any Red Hat extension never throw', () => {
    const oid = fc.constantFrom(RHSM_VERSION_OID, RHSM_PATH_TREE_OID, '1.3.6.1.4.1.2312.9.2.1.1.6', '1.3.6.1.4.1.2312.9.2.99.1.6');
    fc.assert(
      fc.property(fc.dictionary(oid, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b))), (ext) => {
        readRhsmEntitlement(withExtensions(base, ext));
      }),
      { numRuns: 300 },
    );
  });

  it('any header value is a verdict: never a throw, never allowed', async () => {
    const header = fc.oneof(
      fc.string({ maxLength: 2000 }),
      fc.string({ unit: 'binary', maxLength: 500 }),
      fc.string({ maxLength: 1000 }).map((s) => `-----BEGIN CERTIFICATE-----${s}-----END CERTIFICATE-----`),
      fc.base64String({ maxLength: 2000 }),
      fc.base64String({ maxLength: 2000 }).map((s) => encodeURIComponent(`-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----`)),
    );
    await fc.assert(
      fc.asyncProperty(header, async (value) => {
        const v = await guard.check('/Default_Organization/x', value);
        expect(v.allowed).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('random DER bytes are a verdict: never a throw, never allowed', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
        const v = await guard.check('/Default_Organization/x', Buffer.concat([Buffer.from([0x30]), bytes]));
        expect(v.allowed).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('a real certificate with a few bytes changed is allowed only if its DER is unchanged', async () => {
    const target = '/Default_Organization/Library/content/dist/rhel8/8/x86_64/baseos/os/x.rpm';
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: v3Der.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), async (edits) => {
        const der = Buffer.from(v3Der);
        for (const [at, xor] of edits) der[at]! ^= xor;
        const v = await guard.check(target, der);
        if (v.allowed) expect(der.equals(v3Der)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('a real PEM with a few characters changed is allowed only if it decodes to the same DER', async () => {
    const target = '/Default_Organization/Library/content/dist/rhel8/8/x86_64/baseos/os/x.rpm';
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat({ max: v3Pem.length - 1 }), fc.constantFrom('A', '/', '+', '=', ' ', '%', '-', '\n')), { minLength: 1, maxLength: 3 }), async (edits) => {
        const chars = [...v3Pem];
        for (const [at, ch] of edits) chars[at] = ch;
        const pem = chars.join('');
        const v = await guard.check(target, pem);
        if (v.allowed) {
          const r = readCertificate(pem);
          expect(r.ok && r.certificate.der.equals(v3Der)).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('random paths never make the guard throw', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(path, fc.string({ maxLength: 300 })), async (p) => {
        const v = await guard.check(p, v3Pem);
        expect(typeof v.allowed).toBe('boolean');
      }),
      { numRuns: 300 },
    );
  });
});
