import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FaultServer, startFaultServer } from '../upstream/fault-server.js';
import { makeTestPki, type TestPki } from '../upstream/certs.js';
import { startProxy, type TestProxy } from '../upstream/proxy.js';
import { digestOf, type Harness, harness, MiB, randomFile, remote, settle, sha256, source, until } from './helpers.js';

const BODY = randomFile(2 * MiB);
const BODY_SHA = sha256(BODY);

let pki: TestPki;
let plain: FaultServer;
let mtls: FaultServer;
let proxy: TestProxy;
let h: Harness;

beforeAll(async () => {
  pki = makeTestPki();
  plain = await startFaultServer();
  mtls = await startFaultServer({ tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.caCert, requestCert: true } });
  for (const server of [plain, mtls]) server.put('/file.bin', BODY);
});
afterAll(async () => {
  await plain.close();
  await mtls.close();
});
beforeEach(async () => {
  proxy = await startProxy();
  h = await harness();
});
afterEach(async () => {
  await h.close();
  await proxy.close();
});

describe('TLS towards the upstream', () => {
  it('downloads with the remote CA and client certificate', async () => {
    const on = remote({ tls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, verify: true } });
    const fill = h.engine.fill('tls/ok.bin', [source('tls/ok.bin', `${mtls.origin}/file.bin`, BODY, {}, on)]);
    expect(await digestOf(fill.createReader())).toBe(BODY_SHA);
    await fill.done;
  });

  it('fails over when the upstream refuses a missing client certificate', async () => {
    const on = remote({ tls: { ca: pki.caCert, cert: null, key: null, verify: true } });
    const src = source('tls/no-cert.bin', `${mtls.origin}/file.bin`, BODY, {}, on);
    await expect(h.engine.fill('tls/no-cert.bin', [src]).head).rejects.toMatchObject({ code: 'UPSTREAM_FAILED' });
    const failed = h.events.find((e) => e.name === 'source:failed')?.event as { reason: string };
    // TLS 1.3 reports a refused client certificate after the handshake: a TLS alert or a reset.
    expect(['tls', 'network']).toContain(failed.reason);
  });

  it('refuses an upstream certificate it cannot verify, unless verify is off', async () => {
    const untrusting = remote({ tls: { ca: null, cert: pki.clientCert, key: pki.clientKey, verify: true } });
    const refused = h.engine.fill('tls/untrusted.bin', [source('tls/untrusted.bin', `${mtls.origin}/file.bin`, BODY, {}, untrusting)]);
    await expect(refused.head).rejects.toMatchObject({ code: 'UPSTREAM_FAILED' });
    expect(h.events.find((e) => e.name === 'source:failed')?.event).toMatchObject({ reason: 'tls' });

    const lax = remote({ tls: { ca: null, cert: pki.clientCert, key: pki.clientKey, verify: false } });
    const fill = h.engine.fill('tls/lax.bin', [source('tls/lax.bin', `${mtls.origin}/file.bin`, BODY, {}, lax)]);
    expect(await digestOf(fill.createReader())).toBe(BODY_SHA);
  });
});

describe('proxy', () => {
  it('downloads over plain HTTP through the remote proxy', async () => {
    const on = remote({ proxyUrl: proxy.url });
    const before = plain.requests('/file.bin');
    const fill = h.engine.fill('proxy/plain.bin', [source('proxy/plain.bin', `${plain.origin}/file.bin`, BODY, {}, on)]);
    expect(await digestOf(fill.createReader())).toBe(BODY_SHA);
    expect(proxy.tunnels).toEqual([`127.0.0.1:${plain.port}`]);
    expect(plain.requests('/file.bin') - before).toBe(1);
  });

  it('tunnels TLS with a client certificate through the proxy, with proxy credentials', async () => {
    const proxyUrl = proxy.url.replace('http://', 'http://user:s3cret@');
    const on = remote({ proxyUrl, tls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, verify: true } });
    const fill = h.engine.fill('proxy/tls.bin', [source('proxy/tls.bin', `${mtls.origin}/file.bin`, BODY, {}, on)]);
    expect(await digestOf(fill.createReader())).toBe(BODY_SHA);
    expect(proxy.tunnels).toEqual([`127.0.0.1:${mtls.port}`]);
    expect(proxy.lastProxyAuthorization).toBe(`Basic ${Buffer.from('user:s3cret').toString('base64')}`);
  });
});

describe('remote settings', () => {
  it('sends extra headers and basic auth, and asks for the bytes as stored', async () => {
    plain.put('/auth.bin', BODY);
    const on = remote({ headers: { 'X-Token': 'abc' }, basicAuth: { username: 'u', password: 'p' } });
    await h.engine.fill('settings/auth.bin', [source('settings/auth.bin', `${plain.origin}/auth.bin`, BODY, {}, on)]).done;
    expect(plain.lastHeaders('/auth.bin')).toMatchObject({
      'x-token': 'abc',
      authorization: `Basic ${Buffer.from('u:p').toString('base64')}`,
      'accept-encoding': 'identity',
    });
  });

  it('caps concurrent downloads per remote', async () => {
    const server = await startFaultServer();
    try {
      const on = remote({ maxConcurrentDownloads: 1 });
      server.put('/one.bin', BODY);
      server.put('/two.bin', BODY);
      const one = h.engine.fill('cap/one.bin', [source('cap/one.bin', `${server.origin}/one.bin?mode=gate&after=${MiB}`, BODY, {}, on)]);
      await server.gateReached('/one.bin');
      await until(one, () => one.bytesWritten > 0);
      const two = h.engine.fill('cap/two.bin', [source('cap/two.bin', `${server.origin}/two.bin`, BODY, {}, on)]);
      await settle();
      // The second download waits for the slot: no request yet, its head still pending.
      expect(server.requests('/two.bin')).toBe(0);
      expect(two.state).toBe('connecting');

      server.release('/one.bin');
      await Promise.all([one.done, two.done]);
      expect(server.requests('/two.bin')).toBe(1);
      expect(server.maxInFlight).toBe(1);
    } finally {
      await server.close();
    }
  });
});
