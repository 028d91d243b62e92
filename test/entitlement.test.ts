import * as fsp from 'node:fs/promises';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { HmacUrlSigner, StreamerLinks } from '@lazy-content/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adapters, type AdapterApp } from './adapters.js';
import { fixture } from './fixtures/entitlement.js';
import { makeTestPki } from './upstream/certs.js';

const SECRET = 'entitlement-test-signing-secret-0123456789';
const ORG = '/Default_Organization/Library';
const saved = [
  `${ORG}/content/dist/rhel8/8/x86_64/baseos/os/repodata/repomd.xml`,
  `${ORG}/content/dist/rhel/server/7/7.4/x86_64/os/Packages/a.rpm`,
  `${ORG}/content/dist/rhel/server/7/7Server/x86_64/extras/os/x.rpm`,
  `${ORG}/content/dist/rhel/server/7/7Server/x86_64/extras/os2/x.rpm`,
  `${ORG}/custom/foo/foo/repodata/repomd.xml`,
  '/this-is-not-a-valid-base-path/x',
  '/x509/file.txt',
];

/** A client identity: certificate and key (PEM). */
interface Identity {
  cert: string;
  key: string;
  /** OpenSSL's client refuses to present certificates signed with SHA-1 unless the security level is lowered. */
  ciphers?: string;
}
const identity = (cert: string, key = cert, ciphers?: string): Identity => ({ cert: fixture(cert), key: fixture(key), ciphers });
const v3 = identity('rhsm/v3/5527980418107729172.pem', 'rhsm/v3/5527980418107729172-key.pem');
const v3foo = identity('rhsm/v3/4260035510644027985.pem', 'rhsm/v3/4260035510644027985-key.pem');
const v1 = identity('rhsm/v1/1514454871848760713.pem', 'rhsm/v1/1514454871848760713-key.pem');
const uber = identity('rhsm/uber.cert');
const untrusted = identity('rhsm/untrusted_cert.pem', 'rhsm/untrusted_cert-key.pem');
const plainClient = identity('x509/client.pem', 'x509/client-key.pem', 'DEFAULT:@SECLEVEL=0');

function get(
  base: string,
  p: string,
  options: { identity?: Identity; headers?: Record<string, string>; from?: string } = {},
): Promise<{ status: number; body: string; cacheControl?: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${base}${p}`,
      {
        agent: false,
        rejectUnauthorized: false,
        cert: options.identity?.cert,
        key: options.identity?.key,
        ciphers: options.identity?.ciphers,
        headers: options.headers,
        localAddress: options.from,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cacheControl: res.headers['cache-control'] }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

for (const [name, factory] of adapters) {
  describe(`entitlement over HTTPS: ${name}`, () => {
    let dir: string;
    let app: AdapterApp;

    beforeAll(async () => {
      dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-entitlement-'));
      for (const p of saved) {
        await fsp.mkdir(path.dirname(path.join(dir, 'content', p)), { recursive: true });
        await fsp.writeFile(path.join(dir, 'content', p), `bytes of ${p}`);
      }
      const pki = makeTestPki();
      app = await factory(
        {
          root: path.join(dir, 'content'),
          dataDir: path.join(dir, 'data'),
          logger: false,
          signing: { secret: SECRET },
          entitlement: {
            rules: [
              { prefix: '/', ca: fixture('rhsm/katello-default-ca.crt'), policy: 'rhsm' },
              { prefix: '/x509/', ca: fixture('x509/ca.pem'), policy: 'x509' },
            ],
            trustedProxies: ['127.0.0.2'],
          },
        },
        { cert: pki.serverCert, key: pki.serverKey, requestCert: true, rejectUnauthorized: false },
      );
    });
    afterAll(async () => {
      await app.close();
      await fsp.rm(dir, { recursive: true, force: true });
    });

    const c = (p: string) => `/content${p}`;

    it('v3 entitlement on the TLS socket: entitled paths served, others refused', async () => {
      const ok = await get(app.url, c(saved[0]!), { identity: v3 });
      expect(ok.status).toBe(200);
      // Entitled content is never for shared caches.
      expect(ok.cacheControl).toBe('private, max-age=0');
      expect((await get(app.url, c(saved[1]!), { identity: v3 })).status).toBe(200);
      const shorter = await get(app.url, c(`${ORG}/content/dist/rhel8`), { identity: v3 });
      expect(shorter.status).toBe(403);
      expect(shorter.body).toMatch(/does not entitle access to this path/);
      expect((await get(app.url, c('/this-is-not-a-valid-base-path/x'), { identity: v3 })).status).toBe(403);
      expect((await get(app.url, c(saved[4]!), { identity: v3foo })).status).toBe(200);
      expect((await get(app.url, c(saved[0]!), { identity: v3foo })).status).toBe(403);
    });

    it('v1 entitlement respects segment boundaries; uber certificate opens the organisation', async () => {
      expect((await get(app.url, c(saved[2]!), { identity: v1 })).status).toBe(200);
      expect((await get(app.url, c(saved[3]!), { identity: v1 })).status).toBe(403);
      expect((await get(app.url, c(saved[0]!), { identity: uber })).status).toBe(200);
    });

    it('refuses without a certificate, and an untrusted one, in plain words that reveal nothing internal', async () => {
      const none = await get(app.url, c(saved[0]!));
      expect(none.status).toBe(403);
      expect(none.body).toMatch(/no client certificate/);
      const bad = await get(app.url, c(saved[0]!), { identity: untrusted });
      expect(bad.status).toBe(403);
      expect(bad.body).toMatch(/not trusted/);
      for (const body of [none.body, bad.body]) {
        expect(body).not.toMatch(/1\.3\.6|Katello|katello|\/tmp|\.pem|Error|at /);
      }
    });

    it('per-prefix rules: plain X.509 trust under /x509/, the longest prefix wins', async () => {
      expect((await get(app.url, c('/x509/file.txt'), { identity: plainClient })).status).toBe(200);
      expect((await get(app.url, c('/x509/file.txt'), { identity: v3 })).status).toBe(403);
      expect((await get(app.url, c(saved[0]!), { identity: plainClient })).status).toBe(403);
    });

    it('believes the certificate header from a trusted proxy only', async () => {
      const escaped = encodeURIComponent(fixture('rhsm/v3/5527980418107729172.pem'));
      const trusted = { from: '127.0.0.2', headers: { 'x-client-cert': escaped } };
      expect((await get(app.url, c(saved[0]!), trusted)).status).toBe(200);
      expect((await get(app.url, c(saved[3]!), trusted)).status).toBe(403);
      const oneLine = fixture('x509/un_urlencoded_cert.txt').trim();
      expect((await get(app.url, c('/x509/file.txt'), { from: '127.0.0.2', headers: { 'x-client-cert': oneLine } })).status).toBe(200);
      const expired = await get(app.url, c(saved[0]!), {
        from: '127.0.0.2',
        headers: { 'x-client-cert': encodeURIComponent(fixture('rhsm/trusted_but_expired.pem')) },
      });
      expect(expired.status).toBe(403);
      expect(expired.body).toMatch(/expired/);
      const otherCa = await get(app.url, c('/x509/file.txt'), {
        from: '127.0.0.2',
        headers: { 'x-client-cert': encodeURIComponent(fixture('x509/untrusted_client.pem')) },
      });
      expect(otherCa.status).toBe(403);
      expect(otherCa.body).toMatch(/not trusted/);
      // The same header from an address that is not a trusted proxy is ignored.
      const spoofed = await get(app.url, c(saved[0]!), { from: '127.0.0.1', headers: { 'x-client-cert': escaped } });
      expect(spoofed.status).toBe(403);
      expect(spoofed.body).toMatch(/no client certificate/);
    });

    it('judges each request of one keep-alive proxy connection by its own forwarded certificate', async () => {
      // A proxy multiplexes many clients over one upstream connection: what one request forwarded must never
      // decide for the next.
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, localAddress: '127.0.0.2', rejectUnauthorized: false });
      const sockets = new Set<unknown>();
      const send = (header: string | undefined) =>
        new Promise<number>((resolve, reject) => {
          const req = https.request(`${app.url}${c(saved[0]!)}`, { agent, headers: header === undefined ? {} : { 'x-client-cert': header } }, (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end();
        });
      try {
        const good = encodeURIComponent(fixture('rhsm/v3/5527980418107729172.pem'));
        const notEntitled = encodeURIComponent(fixture('rhsm/v3/4260035510644027985.pem'));
        const statuses = [];
        for (const header of [good, good, notEntitled, undefined, good, 'garbage', good]) statuses.push(await send(header));
        expect(statuses).toEqual([200, 200, 403, 403, 200, 403, 200]);
        expect(sockets.size).toBe(1);
      } finally {
        agent.destroy();
      }
    });

    it('checks again on the streamer side: a signed link does not replace a certificate', async () => {
      const links = new StreamerLinks(new HmacUrlSigner(Buffer.from(SECRET)), { prefix: '/_lazy/stream/', expiresInSeconds: 90, bindClientAddress: false });
      const link = links.create(saved[0]!.slice(1), undefined);
      const without = await get(app.url, link);
      expect(without.status).toBe(403);
      expect(without.body).toMatch(/no client certificate/);
      expect((await get(app.url, link, { identity: v1 })).status).toBe(403);
      expect((await get(app.url, link, { identity: v3 })).status).toBe(200);
    });
  });
}

describe('entitlement: arbitrary header values never crash the process', () => {
  let dir: string;
  let app: AdapterApp;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-entitlement-fuzz-'));
    await fsp.mkdir(path.join(dir, 'content', 'Default_Organization'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'content', 'Default_Organization', 'f'), 'x');
    const pki = makeTestPki();
    app = await adapters[0]![1](
      {
        root: path.join(dir, 'content'),
        dataDir: path.join(dir, 'data'),
        logger: false,
        entitlement: { rules: [{ prefix: '/', ca: fixture('rhsm/katello-default-ca.crt'), policy: 'rhsm' }], trustedProxies: ['127.0.0.2'] },
      },
      { cert: pki.serverCert, key: pki.serverKey, requestCert: true, rejectUnauthorized: false },
    );
  });
  afterAll(async () => {
    await app.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('answers 403 to any header that is not a valid certificate, and keeps serving', async () => {
    const pemish = fc.oneof(
      fc.string({ unit: 'binary-ascii', maxLength: 2000 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
      fc.uint8Array({ maxLength: 1500 }).map((b) => `-----BEGIN CERTIFICATE-----${Buffer.from(b).toString('base64')}-----END CERTIFICATE-----`),
      fc.uint8Array({ maxLength: 1500 }).map((b) => encodeURIComponent(`-----BEGIN CERTIFICATE-----\n${Buffer.from(b).toString('base64')}\n-----END CERTIFICATE-----\n`)),
    );
    await fc.assert(
      fc.asyncProperty(pemish, async (value) => {
        const r = await get(app.url, '/content/Default_Organization/f', { from: '127.0.0.2', headers: { 'x-client-cert': value } });
        expect(r.status).toBe(403);
      }),
      { numRuns: 150 },
    );
    const uberCert = fixture('rhsm/uber.cert').slice(fixture('rhsm/uber.cert').indexOf('-----BEGIN CERTIFICATE'));
    const ok = await get(app.url, '/content/Default_Organization/f', { from: '127.0.0.2', headers: { 'x-client-cert': encodeURIComponent(uberCert) } });
    expect(ok.status).toBe(200);
  });
});
