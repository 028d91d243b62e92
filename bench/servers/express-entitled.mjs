// Express 5 + @lazy-content/express, files of ROOT at /content/, with or without entitlement protection
// (bench/entitlement.mjs).
//
//   node bench/servers/express-entitled.mjs --root DIR --protect on|off [--tls-cert FILE --tls-key FILE] [--ca FILE]
//
// --protect on: every path needs a Red Hat entitlement certificate signed by the CA (default: the fixture
//   ../shared/fixtures/entitlement/rhsm/katello-default-ca.crt, relative to the repository root), policy 'rhsm';
//   the header x-client-cert is believed from 127.0.0.1 (a TLS-terminating proxy on the same host).
// --protect off: no `entitlement` option at all.
// --tls-cert/--tls-key: speak HTTPS and ask every client for its certificate (requestCert: true,
//   rejectUnauthorized: false: the guard, not OpenSSL, decides); otherwise plain HTTP.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { lazyContent } from '@lazy-content/express';
import { exitOnSignal, fail, listen, serverArgs } from './common.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const defaultCa = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'entitlement', 'rhsm', 'katello-default-ca.crt');

const args = serverArgs({
  protect: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  ca: { type: 'string' },
});
const { protect, 'tls-cert': tlsCert, 'tls-key': tlsKey, ca = defaultCa } = args.values;
if (protect !== 'on' && protect !== 'off') fail('missing --protect on|off');
if (Boolean(tlsCert) !== Boolean(tlsKey)) fail('--tls-cert and --tls-key go together');

const handler = lazyContent({
  prefix: '/content/',
  root: args.root,
  logger: false,
  ...(protect === 'on'
    ? {
        entitlement: {
          rules: [{ prefix: '/', ca: readFileSync(ca, 'utf8'), policy: 'rhsm' }],
          trustedProxies: ['127.0.0.1'],
        },
      }
    : {}),
});
const app = express();
app.use(handler);
const server = tlsCert
  ? createHttpsServer(
      { cert: readFileSync(tlsCert), key: readFileSync(tlsKey), requestCert: true, rejectUnauthorized: false },
      app,
    )
  : createServer(app);
listen(server, args);
exitOnSignal(async () => {
  server.close();
  await handler.close();
});
