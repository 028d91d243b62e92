import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import Keyv from 'keyv';
import { describe, expect, it } from 'vitest';
import { ecFixture, fixture, FIXTURE_NOW } from '../../../../test/fixtures/entitlement.js';
import { OptionsError } from '../options.js';
import type { ParsedCertificate } from './certificate.js';
import { EntitlementGuard, type EntitlementGuardOptions } from './guard.js';
import { deniedError, denyMessages, type Verdict } from './verdict.js';

const katello = fixture('rhsm/katello-default-ca.crt');
const plainCa = fixture('x509/ca.pem');
const ORG = '/Default_Organization/Library';

const v1 = fixture('rhsm/v1/1514454871848760713.pem');
const v1Custom = fixture('rhsm/v1/159442575569388840.pem');
const v3 = fixture('rhsm/v3/5527980418107729172.pem');
const v3Custom = fixture('rhsm/v3/4260035510644027985.pem');
const uber = fixture('rhsm/uber.cert');
const expired = fixture('rhsm/trusted_but_expired.pem');
const untrusted = fixture('rhsm/untrusted_cert.pem');
const client = fixture('x509/client.pem');
const untrustedClient = fixture('x509/untrusted_client.pem');

function guard(options: Partial<EntitlementGuardOptions> = {}): EntitlementGuard {
  return new EntitlementGuard({
    rules: [
      { prefix: '/Default_Organization', ca: katello, policy: 'rhsm' },
      { prefix: '/plain/', ca: plainCa, policy: 'x509' },
    ],
    now: () => FIXTURE_NOW,
    ...options,
  });
}

const allowed = { allowed: true };
const denied = (reason: string) => expect.objectContaining({ allowed: false, reason, message: (denyMessages as Record<string, string>)[reason] });

describe('EntitlementGuard: the fixtures README through the whole pipeline', () => {
  const g = guard();

  it.each([
    ['5527980418107729172.pem', v3, `${ORG}/content/dist/rhel8/8/x86_64/baseos/os/repodata/repomd.xml`, true],
    ['5527980418107729172.pem', v3, `${ORG}/content/dist/rhel/server/7/7.4/x86_64/os/Packages/a.rpm`, true],
    ['5527980418107729172.pem', v3, `${ORG}/content/dist/rhel8`, false],
    ['1514454871848760713.pem', v1, `${ORG}/content/dist/rhel/server/7/7Server/x86_64/extras/os/x.rpm`, true],
    ['1514454871848760713.pem', v1, `${ORG}/content/dist/rhel/server/7/7Server/x86_64/extras/os2/x.rpm`, false],
    ['159442575569388840.pem', v1Custom, `${ORG}/custom/foo/foo/Packages/a.rpm`, true],
    ['159442575569388840.pem', v1Custom, `${ORG}/custom/foo/bar/a.rpm`, false],
    ['4260035510644027985.pem', v3Custom, `${ORG}/custom/foo/foo/repodata/repomd.xml`, true],
    ['4260035510644027985.pem', v3Custom, `${ORG}/custom/foo/foobar`, false],
    ['uber.cert', uber, `${ORG}/anything/below/it.rpm`, true],
    ['uber.cert', uber, '/Default_Organization', true],
  ])('%s: %s → %s', async (_file, pem, path, ok) => {
    expect(await g.check(path, pem)).toEqual(ok ? allowed : denied('not-entitled'));
  });

  it('refuses /this-is-not-a-valid-base-path/x under a rule covering everything', async () => {
    const all = guard({ rules: [{ prefix: '/', ca: katello, policy: 'rhsm' }] });
    expect(await all.check('/this-is-not-a-valid-base-path/x', v3)).toEqual(denied('not-entitled'));
  });

  it('refuses trusted_but_expired.pem as expired', async () => {
    expect(await g.check(`${ORG}/content/x`, expired)).toEqual(denied('expired'));
  });

  it('refuses untrusted_cert.pem as untrusted', async () => {
    expect(await g.check(`${ORG}/content/x`, untrusted)).toEqual(denied('untrusted'));
  });

  it('refuses a certificate before its notBefore', async () => {
    const early = guard({ now: () => Date.parse('2020-03-06T00:00:00Z') });
    // 4260035510644027985.pem starts on 2020-03-05 19:50:59, the Katello CA on 2020-03-05 19:26:08.
    expect(await early.check(`${ORG}/custom/foo/foo/x`, v3Custom)).toEqual(allowed);
    const earlier = guard({ now: () => Date.parse('2020-03-05T19:40:00Z') });
    expect(await earlier.check(`${ORG}/custom/foo/foo/x`, v3Custom)).toEqual(denied('not-yet-valid'));
  });

  it('lets a plain X.509 client through an x509 rule, by trust only', async () => {
    expect(await g.check('/plain/anything/at/all', client)).toEqual(allowed);
    expect(await g.check('/plain/x', untrustedClient)).toEqual(denied('untrusted'));
    expect(await g.check('/plain/x', uber)).toEqual(denied('untrusted'));
  });

  it('refuses a trusted plain client under an rhsm rule: it entitles nothing', async () => {
    const both = guard({ rules: [{ prefix: '/Default_Organization', ca: [katello, plainCa], policy: 'rhsm' }] });
    expect(await both.check(`${ORG}/x`, client)).toEqual(denied('not-entitled'));
  });

  it('accepts the one-line PEM fixture as x509/client.pem', async () => {
    expect(await g.check('/plain/x', fixture('x509/un_urlencoded_cert.txt'))).toEqual(allowed);
  });

  it('accepts the certificate as DER (TLS socket), URL-encoded PEM (nginx) or already parsed', async () => {
    const der = new X509Certificate(v3).raw;
    const path = `${ORG}/content/dist/rhel8/8/x86_64/baseos/os/x.rpm`;
    expect(await g.check(path, der)).toEqual(allowed);
    expect(await g.check(path, encodeURIComponent(v3))).toEqual(allowed);
    let seen: ParsedCertificate | undefined;
    const capture = guard({ rules: [{ prefix: '/', ca: katello, policy: (c) => ((seen = c), true) }] });
    await capture.check('/x', v3);
    expect(await g.check(path, seen)).toEqual(allowed);
  });

  it('checks EC certificates end to end', async () => {
    const ec = guard({ rules: [{ prefix: '/', ca: ecFixture('ca.pem'), policy: 'rhsm' }] });
    expect(await ec.check('/foo/path/always/9/x', ecFixture('client.pem'))).toEqual(allowed);
    expect(await ec.check('/foo/listing', ecFixture('client.pem'))).toEqual(allowed);
    expect(await ec.check('/foo/other', ecFixture('client.pem'))).toEqual(denied('not-entitled'));
    expect(await ec.check('/foo/path', ecFixture('garbage-entitlement.pem'))).toEqual(denied('bad-entitlement'));
    expect(await ec.check('/foo/path', ecFixture('signed-by-not-a-ca.pem'))).toEqual(denied('untrusted'));
  });
});

describe('EntitlementGuard: rules and paths', () => {
  it('leaves paths under no rule open, without looking at the certificate', async () => {
    const g = guard();
    expect(await g.check('/public/x.rpm', undefined)).toEqual(allowed);
    expect(await g.check('/public/x.rpm', 'garbage')).toEqual(allowed);
    expect(g.ruleFor('/public/x.rpm')).toBeUndefined();
  });

  it('matches rule prefixes on whole segments', async () => {
    const g = guard();
    expect(g.ruleFor('/Default_Organization')).toBe('/Default_Organization');
    expect(g.ruleFor('/Default_Organization/x')).toBe('/Default_Organization');
    expect(g.ruleFor('/Default_OrganizationX/x')).toBeUndefined();
    expect(g.ruleFor('/default_organization/x')).toBeUndefined();
    expect(g.ruleFor('/plain')).toBe('/plain');
  });

  it('lets the longest matching prefix win, whatever the order of the rules', async () => {
    for (const rules of [
      [
        { prefix: '/', ca: plainCa, policy: 'x509' as const },
        { prefix: '/Default_Organization/Library/', ca: katello, policy: 'rhsm' as const },
      ],
      [
        { prefix: '/Default_Organization/Library/', ca: katello, policy: 'rhsm' as const },
        { prefix: '/', ca: plainCa, policy: 'x509' as const },
      ],
    ]) {
      const g = guard({ rules });
      expect(await g.check('/elsewhere/x', client)).toEqual(allowed);
      expect(await g.check('/Default_Organization/other', client)).toEqual(allowed);
      expect(await g.check(`${ORG}/custom/foo/foo/x`, client)).toEqual(denied('untrusted'));
      expect(await g.check(`${ORG}/custom/foo/foo/x`, v1Custom)).toEqual(allowed);
    }
  });

  it('normalises the path before choosing a rule, so .. cannot dodge one', async () => {
    const g = guard();
    expect(g.ruleFor('/public/../Default_Organization/x')).toBe('/Default_Organization');
    expect(await g.check('/public/../Default_Organization/Library/custom/foo/foo', undefined)).toEqual(denied('no-certificate'));
    expect(await g.check('//Default_Organization/./Library/custom/foo/foo/x', v1Custom)).toEqual(allowed);
    expect(await g.check('Default_Organization/Library/custom/foo/foo/x', v1Custom)).toEqual(allowed);
    expect(await g.check('/../x', undefined)).toEqual(denied('not-entitled'));
  });
});

describe('EntitlementGuard: the request-path shortcuts give the same answers', () => {
  const path = `${ORG}/content/dist/rhel8/8/x86_64/baseos/os/x.rpm`;

  it('re-reads the certificate when a proxy connection forwards another client\'s text', async () => {
    const g = guard();
    const connection = {};
    expect(await g.check(path, encodeURIComponent(v3), { connection })).toEqual(allowed);
    // The same proxy connection now carries a request of another client: its certificate decides.
    expect(await g.check(path, encodeURIComponent(untrusted), { connection })).toEqual(denied('untrusted'));
    expect(await g.check(path, undefined, { connection })).toEqual(denied('no-certificate'));
    expect(await g.check(path, 'garbage', { connection })).toEqual(denied('unreadable'));
    expect(await g.check(path, encodeURIComponent(v3), { connection })).toEqual(allowed);
    // A connection never decides for another one.
    expect(await g.check(path, encodeURIComponent(expired), { connection: {} })).toEqual(denied('expired'));
  });

  it('notices that a buffer it has seen was overwritten with other bytes', async () => {
    const g = guard();
    const der = Buffer.from(new X509Certificate(v3).raw);
    expect(await g.check(path, der)).toEqual(allowed);
    der[der.length - 1]! ^= 0xff; // the last byte of the signature
    expect(await g.check(path, der)).toEqual(denied('untrusted'));
  });

  it('answers synchronously from checkProtected once the entitlement is decoded', async () => {
    const g = guard();
    const protection = g.protectionOf(path)!;
    expect(protection.prefix).toBe('/Default_Organization');
    expect(await g.checkProtected(protection, v3)).toEqual(allowed);
    const again = g.checkProtected(protection, v3);
    expect(again).toEqual(allowed);
    expect(g.checkProtected(g.protectionOf(`${ORG}/content/dist/rhel8`)!, v3)).toEqual(denied('not-entitled'));
    expect(g.protectionOf('/public/x')).toBeUndefined();
  });

  it('chooses the same rule for any spelling of a path as a segment-by-segment reference does', () => {
    const prefixes = ['/', '/a', '/a/b', '/a/bc', '/b/..c', '/x/y/z'];
    const rules = prefixes.map((prefix) => ({ prefix, ca: plainCa, policy: 'x509' as const }));
    const g = guard({ rules });
    const reference = (path: string): string | undefined => {
      const out: string[] = [];
      for (const s of path.split('/')) {
        if (s === '' || s === '.') continue;
        if (s === '..') {
          if (out.length === 0) return undefined;
          out.pop();
        } else out.push(s);
      }
      const matching = prefixes.filter((p) => {
        const ps = p.split('/').filter((s) => s !== '');
        return ps.every((seg, i) => out[i] === seg);
      });
      return matching.sort((x, y) => y.split('/').filter(Boolean).length - x.split('/').filter(Boolean).length)[0];
    };
    const segment = fc.constantFrom('', '.', '..', 'a', 'b', 'bc', '..c', '.a', 'x', 'y', 'z', 'a.', '...');
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 6 }), fc.boolean(), fc.boolean(), (segments, lead, trail) => {
        const path = `${lead ? '/' : ''}${segments.join('/')}${trail ? '/' : ''}`;
        expect(g.ruleFor(path)).toBe(reference(path));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('EntitlementGuard: refusals', () => {
  const g = guard();
  const path = `${ORG}/x`;

  it.each([
    ['no certificate', undefined, 'no-certificate'],
    ['null', null, 'no-certificate'],
    ['an empty header', '', 'no-certificate'],
    ["Apache's (null)", '(null)', 'no-certificate'],
    ['garbage', 'not a certificate', 'unreadable'],
    ['a private key', fixture('x509/client-key.pem'), 'unreadable'],
    ['random DER-looking bytes', Buffer.from([0x30, 0x82, 0x01, 0x00, 1, 2, 3]), 'unreadable'],
  ])('%s → %s', async (_name, input, reason) => {
    expect(await g.check(path, input)).toEqual(denied(reason));
  });

  it('never reveals internals in the message', async () => {
    const verdicts: Verdict[] = [
      await g.check(path, undefined),
      await g.check(path, 'x'),
      await g.check(path, untrusted),
      await g.check(path, expired),
      await g.check(`${ORG}/nope`, v3),
      await guard({ rules: [{ prefix: '/', ca: katello, policy: () => Promise.reject(new Error('/etc/secret at line 3')) }] }).check('/x', v3),
    ];
    for (const v of verdicts) {
      expect(v.allowed).toBe(false);
      if (v.allowed) continue;
      expect(Object.values(denyMessages)).toContain(v.message);
      expect(v.message).not.toMatch(/[/\\]|CN=|Katello|Error|at /);
      expect(deniedError(v)).toMatchObject({ status: 403, message: v.message });
    }
  });

  it('turns a throwing, rejecting or hanging callback into a policy-error refusal', async () => {
    const throwing = guard({ rules: [{ prefix: '/', ca: katello, policy: () => { throw new Error('boom'); } }] });
    const rejecting = guard({ rules: [{ prefix: '/', ca: katello, policy: () => Promise.reject(Object.create(null)) }] });
    const hanging = guard({ rules: [{ prefix: '/', ca: katello, policy: () => new Promise<boolean>(() => {}) }], callbackTimeoutMs: 20 });
    const throwingPolicy = guard({ rules: [{ prefix: '/', ca: katello, policy: { check: () => { throw new Error('boom'); } } }] });
    for (const g2 of [throwing, rejecting, hanging, throwingPolicy]) {
      expect(await g2.check('/x', v3)).toEqual(denied('policy-error'));
    }
  });

  it('allows a callback only on true', async () => {
    const calls: string[] = [];
    const answers = new Map<string, unknown>([['/yes', true], ['/no', false], ['/truthy', 1], ['/async', Promise.resolve(true)]]);
    const g2 = guard({
      rules: [{ prefix: '/', ca: katello, policy: (c, p) => (calls.push(`${c.subject}|${p}`), answers.get(p) as boolean) }],
    });
    expect(await g2.check('/yes', v3)).toEqual(allowed);
    expect(await g2.check('/no', v3)).toEqual(denied('not-entitled'));
    expect(await g2.check('/truthy', v3)).toEqual(denied('not-entitled'));
    expect(await g2.check('/async', v3)).toEqual(allowed);
    expect(calls[0]).toMatch(/O=Default_Organization.*\|\/yes$/s);
  });

  it('does not call the policy for an untrusted or expired certificate', async () => {
    let called = 0;
    const g2 = guard({ rules: [{ prefix: '/', ca: katello, policy: () => (called++, true) }] });
    expect(await g2.check('/x', untrusted)).toEqual(denied('untrusted'));
    expect(await g2.check('/x', expired)).toEqual(denied('expired'));
    expect(called).toBe(0);
  });
});

describe('EntitlementGuard: cache', () => {
  it('keeps decoded entitlements in the given Keyv store', async () => {
    const map = new Map<string, string>();
    const g = guard({ store: new Keyv({ store: map }) });
    for (let i = 0; i < 5; i++) await g.check(`${ORG}/content/dist/rhel8/8/x86_64/baseos/os/x${i}.rpm`, v3);
    expect(map.size).toBe(1);
    expect([...map.values()][0]).toContain('baseos');
  });
});

describe('EntitlementGuard: options', () => {
  const base = { prefix: '/a', ca: katello, policy: 'rhsm' as const };
  it.each([
    ['rules missing', {}, /entitlement\.rules/],
    ['a prefix without /', { rules: [{ ...base, prefix: 'a' }] }, /rules\[0\]\.prefix/],
    ['a prefix with ..', { rules: [{ ...base, prefix: '/a/../b' }] }, /rules\[0\]\.prefix/],
    ['two rules on one prefix', { rules: [base, { ...base, prefix: '/a/' }] }, /rules\[1\]\.prefix.*same prefix/],
    ['a CA that is a file path', { rules: [{ ...base, ca: '/etc/pki/ca.crt' }] }, /rules\[0\]\.ca.*file path/],
    ['an empty CA list', { rules: [{ ...base, ca: [] }] }, /rules\[0\]\.ca/],
    ['an unknown policy', { rules: [{ ...base, policy: 'rhsm4' }] }, /rules\[0\]\.policy/],
    ['a bad cache size', { rules: [base], cacheEntries: 0 }, /entitlement\.cacheEntries/],
    ['a bad timeout', { rules: [base], callbackTimeoutMs: 1.5 }, /entitlement\.callbackTimeoutMs/],
    ['a store that is no Keyv', { rules: [base], store: {} }, /entitlement\.store/],
    ['a bad path tree limit', { rules: [base], pathTreeLimits: { maxNodes: -1 } }, /entitlement\.pathTreeLimits\.maxNodes/],
    ['a clock that is no function', { rules: [base], now: 5 }, /entitlement\.now/],
  ])('refuses %s', (_name, options, message) => {
    expect(() => new EntitlementGuard(options as EntitlementGuardOptions)).toThrow(OptionsError);
    expect(() => new EntitlementGuard(options as EntitlementGuardOptions)).toThrow(message);
  });

  it('accepts no rules at all (everything open)', async () => {
    expect(await new EntitlementGuard({ rules: [] }).check('/x', undefined)).toEqual(allowed);
  });
});
