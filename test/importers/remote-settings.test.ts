import { importRepository } from '@lazy-content/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../upstream/certs.js';
import { startProxy, type TestProxy } from '../upstream/proxy.js';
import { fileRepo, instance, type Instance, type RepoServer, snapshot, startRepoServer, yumRepo, rpm } from './repo-server.js';

let pki: TestPki;
let mtls: RepoServer;
let plain: RepoServer;
let proxy: TestProxy;
let h: Instance;

beforeAll(async () => {
  pki = makeTestPki();
  mtls = await startRepoServer({ tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.caCert, requestCert: true } });
  plain = await startRepoServer();
  for (const server of [mtls, plain]) {
    server.publish('/files/', fileRepo(new Map([['a.txt', Buffer.from('alpha\n')]])));
    server.publish('/yum/', yumRepo({ packages: [rpm('bash')], compression: 'zst', listing: '9\n' }).files);
  }
});
afterAll(async () => {
  await mtls.close();
  await plain.close();
});
beforeEach(async () => {
  h = await instance();
  proxy = await startProxy();
});
afterEach(async () => {
  await h.close();
  await proxy.close();
});

describe('an import reaches the upstream with the remote settings', () => {
  const tls = () => ({ ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey });

  it('TLS with a client certificate, for a file and a yum repository', async () => {
    await expect(
      importRepository(h.lc, { url: `${mtls.origin}/files/`, type: 'file', prefix: 'files/', remote: 'secure', remoteSettings: { tls: tls() } }),
    ).resolves.toMatchObject({ added: 2 });
    // The remote now holds the settings: the yum import needs none of its own.
    await expect(importRepository(h.lc, { url: `${mtls.origin}/yum/`, type: 'yum', prefix: 'yum/', remote: 'secure' })).resolves.toMatchObject({ added: 5 });
    expect(await (await h.lc.catalog()).getRemote('secure')).toMatchObject({ tls: { ca: pki.caCert, cert: pki.clientCert, key: 'set' } });
  });

  it('refuses an upstream it cannot verify, and writes nothing', async () => {
    const untrusted = importRepository(h.lc, {
      url: `${mtls.origin}/files/`,
      type: 'file',
      prefix: 'files/',
      remote: 'secure',
      remoteSettings: { tls: { cert: pki.clientCert, key: pki.clientKey } },
    });
    await expect(untrusted).rejects.toMatchObject({ code: 'UPSTREAM_FAILED', message: expect.stringMatching(/could not fetch https:\/\/127\.0\.0\.1:\d+\/files\/PULP_MANIFEST: tls/) });
    expect(await snapshot(h.lc)).toEqual({ remotes: [], entries: [] });
  });

  it('through the remote proxy', async () => {
    await importRepository(h.lc, { url: `${plain.origin}/yum/`, type: 'yum', prefix: 'yum/', remote: 'proxied', remoteSettings: { proxyUrl: proxy.url } });
    await importRepository(h.lc, { url: `${mtls.origin}/files/`, type: 'file', prefix: 'files/', remote: 'both', remoteSettings: { proxyUrl: proxy.url, tls: tls() } });
    // The metadata requests went through the proxy, to both upstreams.
    expect(new Set(proxy.tunnels)).toEqual(new Set([`127.0.0.1:${new URL(plain.origin).port}`, `127.0.0.1:${new URL(mtls.origin).port}`]));
  });
});
