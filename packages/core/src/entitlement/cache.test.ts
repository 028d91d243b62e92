import Keyv from 'keyv';
import { describe, expect, it } from 'vitest';
import { derOctetString, derUtf8String, fixture, FIXTURE_NOW, withExtensions } from '../../../../test/fixtures/entitlement.js';
import { encodePathTree } from '../../../../test/fixtures/pathtree-encoder.js';
import { EntitlementCache } from './cache.js';
import { readCertificate, type ParsedCertificate } from './certificate.js';
import { RHSM_PATH_TREE_OID, RHSM_VERSION_OID, type RhsmEntitlement } from './rhsm.js';

function cert(pem: string): ParsedCertificate {
  const r = readCertificate(pem);
  if (!r.ok) throw new Error(r.detail);
  return r.certificate;
}

const paths = (e: RhsmEntitlement) => (e.kind === 'paths' ? e.tree.paths() : e.kind);

/** A Keyv on a Map we can look into; Keyv serialises values to JSON strings there. */
function inspectableStore() {
  const map = new Map<string, string>();
  return { map, keyv: new Keyv({ store: map }) };
}

const v3 = cert(fixture('rhsm/v3/5527980418107729172.pem'));

describe('EntitlementCache', () => {
  it('decodes a certificate once, then answers from memory', async () => {
    const cache = new EntitlementCache({ now: () => FIXTURE_NOW });
    const first = await cache.get(v3);
    expect(first.kind).toBe('paths');
    expect(await cache.get(v3)).toBe(first);
  });

  it('shares one decode between concurrent requests', async () => {
    const cache = new EntitlementCache({ now: () => FIXTURE_NOW });
    const all = await Promise.all(Array.from({ length: 10 }, () => cache.get(v3)));
    for (const e of all) expect(e).toBe(all[0]);
  });

  it('stores the decoded path tree as JSON, keyed by fingerprint, expiring no later than notAfter', async () => {
    const { map, keyv } = inspectableStore();
    await new EntitlementCache({ store: keyv, now: () => FIXTURE_NOW }).get(v3);
    expect(map.size).toBe(1);
    const [key, raw] = [...map.entries()][0]!;
    expect(key).toContain(v3.fingerprint);
    const stored = JSON.parse(raw) as { value: { expiresAt: number; entitlement: { kind: string; version: number; tree: { nodes: unknown[] } } }; expires: number };
    expect(stored.value.entitlement).toMatchObject({ kind: 'paths', version: 3 });
    expect(stored.value.entitlement.tree.nodes.length).toBeGreaterThan(1);
    expect(stored.value.expiresAt).toBeLessThanOrEqual(v3.notAfter.getTime());
  });

  it('never keeps an entry past the certificate notAfter, however long the maximum TTL', async () => {
    const { map, keyv } = inspectableStore();
    const now = v3.notAfter.getTime() - 5000;
    await new EntitlementCache({ store: keyv, now: () => now, maxTtlMs: 365 * 24 * 3600 * 1000 }).get(v3);
    const stored = JSON.parse([...map.values()][0]!) as { value: { expiresAt: number } };
    expect(stored.value.expiresAt).toBe(v3.notAfter.getTime());
  });

  it('stores nothing for a certificate already past notAfter, and drops a held entry once it is', async () => {
    const { map, keyv } = inspectableStore();
    let now = v3.notAfter.getTime() - 1000;
    const cache = new EntitlementCache({ store: keyv, now: () => now });
    const before = await cache.get(v3);
    now = v3.notAfter.getTime() + 1;
    map.clear();
    const after = await cache.get(v3);
    expect(after).not.toBe(before);
    expect(map.size).toBe(0);
  });

  it('rebuilds the matcher from the shared store in another process (another cache on the same store)', async () => {
    const { keyv } = inspectableStore();
    const fake = withExtensions(v3, {});
    // Plant an entry for this fingerprint whose paths the certificate does not carry: reading it proves the
    // second cache took the store's data instead of decoding.
    await keyv.set(`lazy-content:entitlement:1:${fake.fingerprint}`, {
      expiresAt: FIXTURE_NOW + 60_000,
      entitlement: { kind: 'paths', version: 3, tree: { nodes: [[['planted', 1]], []] } },
    });
    const e = await new EntitlementCache({ store: keyv, now: () => FIXTURE_NOW }).get(fake);
    expect(paths(e)).toEqual(['/planted']);
  });

  it.each([
    ['malformed', { expiresAt: FIXTURE_NOW + 60_000, entitlement: { kind: 'paths', version: 3, tree: { nodes: [[['a', 9]]] } } }],
    ['expired by its own date', { expiresAt: FIXTURE_NOW - 1, entitlement: { kind: 'none' } }],
    ['of another shape', 'a string'],
  ])('decodes again when the stored entry is %s', async (_name, value) => {
    const { keyv } = inspectableStore();
    await keyv.set(`lazy-content:entitlement:1:${v3.fingerprint}`, value);
    const e = await new EntitlementCache({ store: keyv, now: () => FIXTURE_NOW }).get(v3);
    expect(paths(e)).toHaveLength(4);
  });

  it('works on when the store fails', async () => {
    const failing = new Keyv({
      store: {
        get: () => Promise.reject(new Error('redis down')),
        set: () => Promise.reject(new Error('redis down')),
        delete: () => Promise.reject(new Error('redis down')),
        clear: () => Promise.reject(new Error('redis down')),
      } as unknown as Map<string, string>,
    });
    const e = await new EntitlementCache({ store: failing, now: () => FIXTURE_NOW }).get(v3);
    expect(paths(e)).toHaveLength(4);
  });

  it('caches unreadable entitlement data as unreadable', async () => {
    const { map, keyv } = inspectableStore();
    const bad = withExtensions(v3, { [RHSM_VERSION_OID]: derUtf8String('3.4'), [RHSM_PATH_TREE_OID]: derOctetString(Buffer.from('nonsense')) });
    const e = await new EntitlementCache({ store: keyv, now: () => FIXTURE_NOW }).get(bad);
    expect(e.kind).toBe('unreadable');
    expect([...map.values()][0]).toContain('unreadable');
  });

  it('applies its path tree limits to decoding', async () => {
    const nodes: Array<Array<[string, number]>> = [];
    for (let i = 0; i < 50; i++) nodes.push([[`s${i}`, i + 1]]);
    nodes.push([]);
    const big = withExtensions(v3, { [RHSM_VERSION_OID]: derUtf8String('3.4'), [RHSM_PATH_TREE_OID]: derOctetString(encodePathTree(nodes)) });
    expect((await new EntitlementCache({ now: () => FIXTURE_NOW }).get(big)).kind).toBe('paths');
    expect((await new EntitlementCache({ now: () => FIXTURE_NOW, limits: { maxNodes: 10 } }).get(big)).kind).toBe('unreadable');
  });
});
