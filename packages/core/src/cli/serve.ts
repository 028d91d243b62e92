import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { LazyContent } from '../lazy-content.js';
import type { LazyContentOptions } from '../options.js';
import type { EntitlementRule } from '../entitlement/guard.js';
import { DOWNLOAD_POLICIES, type DownloadPolicy } from '../catalog/types.js';
import { burstAccept, burstAcceptDefaults, MAX_ACCEPTORS } from '../http/burst-accept.js';
import { type ArgToken, int, oneOf, parse, str, UsageError } from './args.js';
import { baseOptions, commonOptions, helpOf } from './common.js';
import type { ImportSpec } from './import.js';

/** The library itself, loaded once the command line is known to be good (so that mistakes answer at once). */
const library = () => import('../lazy-content.js');

const CONTENT_PREFIX = '/content/';

const serveOptions = {
  ...commonOptions,
  host: { type: 'string' },
  port: { type: 'string' },
  acceptors: { type: 'string' },
  framework: { type: 'string' },
  import: { type: 'string', multiple: true },
  type: { type: 'string', multiple: true },
  prefix: { type: 'string', multiple: true },
  policy: { type: 'string', multiple: true },
  resync: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'client-ca': { type: 'string', multiple: true },
  entitlement: { type: 'string', multiple: true },
  protect: { type: 'string', multiple: true },
  'trust-proxy': { type: 'string', multiple: true },
} as const;

const SERVE_HELP = helpOf(
  'serve [options]',
  `  --host HOST        address to listen on                                  [127.0.0.1]
  --port PORT        port (0: any free port)                               [8080]
  --acceptors N      extra watchers of the listening socket: a burst of    [16]
                     clients is accepted up to N+1 per turn of the event loop
  --framework NAME   express, koa or nestjs                                [express]
  --import URL       a repository to import at start-up; followed by:
    --type T         file (Pulp PULP_MANIFEST) or yum                      [file]
    --prefix P       where it appears, e.g. /content/NAME/                 [required]
    --policy P       on_demand, streamed, background or immediate          [on_demand]
  --resync SECONDS   import every repository again this often              [never]
  --tls-cert F --tls-key F   serve HTTPS (asks for client certificates when --client-ca is given)
  --client-ca F      a CA bundle whose certificates may fetch; followed by:
    --entitlement E  rhsm (Red Hat entitlement paths) or x509 (trust only) [rhsm]
    --protect P      the path it protects, e.g. /content/NAME/             [/content/]
  --trust-proxy CIDR a proxy whose X-Client-Cert header is believed (repeatable)`,
);

/** Options that come in groups (`--import URL --type T --prefix P`): each group starts at its lead option. */
function groups(tokens: ArgToken[], lead: string, members: string[]): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = [];
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined || t.value === undefined) continue;
    if (t.name === lead) out.push({ [lead]: t.value });
    else if (members.includes(t.name)) {
      const current = out.at(-1);
      if (!current) throw new UsageError(`--${t.name} must follow --${lead}`);
      if (current[t.name] !== undefined) throw new UsageError(`--${t.name} given twice for one --${lead}`);
      current[t.name] = t.value;
    }
  }
  return out;
}

/** `/content/NAME/` → `NAME/` (catalog paths are below the content prefix). */
function belowContent(p: string, option: string): string {
  const withSlash = p.endsWith('/') ? p : `${p}/`;
  if (!withSlash.startsWith(CONTENT_PREFIX)) throw new UsageError(`--${option} must start with ${CONTENT_PREFIX} (got "${p}")`);
  return withSlash.slice(CONTENT_PREFIX.length);
}

interface Running {
  url: string;
  close(): Promise<void>;
}

async function listen(
  framework: 'express' | 'koa' | 'nestjs',
  options: LazyContentOptions,
  tls: https.ServerOptions | undefined,
  host: string,
  port: number,
  acceptors: number,
): Promise<Running & { core: LazyContent }> {
  // The adapters are imported by name: core does not depend on them, the CLI uses what is installed.
  const load = async <T>(name: string): Promise<T> => {
    try {
      return (await import(name)) as T;
    } catch {
      throw new UsageError(`--framework ${framework} needs the package ${name}: npm install ${name}`);
    }
  };
  const scheme = tls ? 'https' : 'http';
  const serve = async (listener: http.RequestListener, core: LazyContent) => {
    const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    await burstAccept(server, { acceptors });
    const address = server.address() as AddressInfo;
    return {
      core,
      url: `${scheme}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
      close: async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await core.close();
      },
    };
  };
  if (framework === 'express') {
    const { default: express } = await load<{ default: () => http.RequestListener & { use(h: unknown): void } }>('express');
    const { lazyContent } = await load<{ lazyContent(o: LazyContent): unknown }>('@lazy-content/express');
    const core = (await library()).createLazyContent(options);
    const app = express();
    app.use(lazyContent(core));
    return serve(app, core);
  }
  if (framework === 'koa') {
    const { default: Koa } = await load<{ default: new () => { use(m: unknown): void; callback(): http.RequestListener } }>('koa');
    const { lazyContent } = await load<{ lazyContent(o: LazyContent): unknown }>('@lazy-content/koa');
    const core = (await library()).createLazyContent(options);
    const app = new Koa();
    app.use(lazyContent(core));
    return serve(app.callback(), core);
  }
  const { NestFactory } = await load<{ NestFactory: { create(m: unknown, o: unknown): Promise<NestApp> } }>('@nestjs/core');
  const { Module } = await load<{ Module(m: unknown): (c: unknown) => void }>('@nestjs/common');
  const nest = await load<{ LazyContentModule: { forRoot(o: unknown): unknown }; LazyContentService: unknown }>('@lazy-content/nestjs');
  class AppModule {}
  Module({ imports: [nest.LazyContentModule.forRoot(options)] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'], ...(tls ? { httpsOptions: tls } : {}) });
  await app.listen(port, host);
  await burstAccept(app.getHttpServer(), { acceptors });
  const address = app.getHttpServer().address() as AddressInfo;
  return {
    core: (app.get(nest.LazyContentService) as { core: LazyContent }).core,
    url: `${scheme}://${address.address}:${address.port}`,
    close: () => app.close(),
  };
}

interface NestApp {
  listen(port: number, host: string): Promise<unknown>;
  getHttpServer(): http.Server;
  get(token: unknown): unknown;
  close(): Promise<void>;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const { values, tokens } = parse(argv, serveOptions);
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const host = str(values, 'host') ?? '127.0.0.1';
  const port = int(values, 'port', 8080, 0, 65535);
  const acceptors = int(values, 'acceptors', burstAcceptDefaults.acceptors, 0, MAX_ACCEPTORS);
  const framework = oneOf(values, 'framework', ['express', 'koa', 'nestjs'] as const, 'express');
  const resync = int(values, 'resync', 0, 0, 365 * 86400);

  const imports: ImportSpec[] = groups(tokens, 'import', ['type', 'prefix', 'policy']).map((g) => {
    const type = g.type ?? 'file';
    if (type !== 'file' && type !== 'yum') throw new UsageError(`--type must be file or yum (got "${type}")`);
    if (!g.prefix) throw new UsageError(`--import ${g.import} needs --prefix /content/NAME/`);
    const policy = (g.policy ?? 'on_demand') as DownloadPolicy;
    if (!DOWNLOAD_POLICIES.includes(policy)) throw new UsageError(`--policy must be one of ${DOWNLOAD_POLICIES.join(', ')} (got "${g.policy}")`);
    try {
      new URL(g.import!);
    } catch {
      throw new UsageError(`--import must be an absolute URL (got "${g.import}")`);
    }
    const prefix = belowContent(g.prefix, 'prefix');
    return { url: g.import!, type, prefix, policy, remote: prefix.replace(/\/$/, '').replace(/[^A-Za-z0-9._-]/g, '-') || 'default' };
  });
  if (!imports.length && (values.type || values.prefix || values.policy)) throw new UsageError('--type, --prefix and --policy go with --import');

  const rules: EntitlementRule[] = groups(tokens, 'client-ca', ['entitlement', 'protect']).map((g) => {
    let ca: string;
    try {
      ca = readFileSync(g['client-ca']!, 'utf8');
    } catch (err) {
      throw new UsageError(`--client-ca ${g['client-ca']}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    const policy = g.entitlement ?? 'rhsm';
    if (policy !== 'rhsm' && policy !== 'x509') throw new UsageError(`--entitlement must be rhsm or x509 (got "${policy}")`);
    return { prefix: `/${belowContent(g.protect ?? CONTENT_PREFIX, 'protect')}`, ca, policy };
  });
  if (!rules.length && (values.entitlement || values.protect)) throw new UsageError('--entitlement and --protect go with --client-ca');

  const certFile = str(values, 'tls-cert');
  const keyFile = str(values, 'tls-key');
  if (Boolean(certFile) !== Boolean(keyFile)) throw new UsageError('--tls-cert and --tls-key go together');
  let tls: https.ServerOptions | undefined;
  if (certFile && keyFile) {
    try {
      tls = { cert: readFileSync(certFile), key: readFileSync(keyFile), requestCert: rules.length > 0, rejectUnauthorized: false };
    } catch (err) {
      throw new UsageError(`--tls-cert/--tls-key: ${(err as Error).message}`);
    }
  }

  const { redisQueue, release, ...options } = await baseOptions(values);
  if (rules.length) {
    options.entitlement = { rules, trustedProxies: (values['trust-proxy'] as string[] | undefined) ?? [] };
  } else if (values['trust-proxy']) {
    throw new UsageError('--trust-proxy goes with --client-ca');
  }
  const running = await listen(framework, { ...options, prefix: CONTENT_PREFIX, save: { ...options.save, ...(redisQueue ? { queue: redisQueue } : {}) } }, tls, host, port, acceptors);
  process.stdout.write(`lazy-content (${framework}) listening on ${running.url}${CONTENT_PREFIX}\n`);

  const { runImport } = await import('./import.js');
  const importAll = async () => {
    for (const spec of imports) await runImport(running.core, spec, process.stdout);
  };
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    try {
      await running.close();
    } finally {
      await release();
    }
  };
  try {
    await running.core.start();
    await importAll();
  } catch (err) {
    await stop();
    throw err;
  }
  if (resync > 0 && imports.length) {
    let importing = false;
    timer = setInterval(() => {
      // An import that takes longer than the interval is not run twice at once: the tick is skipped.
      if (importing || stopping) return;
      importing = true;
      importAll()
        .catch((err: unknown) => process.stderr.write(`lazy-content: resync failed: ${(err as Error).message}\n`))
        .finally(() => (importing = false));
    }, resync * 1000);
  }
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop().then(resolve));
  });
  return 0;
}

const WORKER_HELP = helpOf(
  'worker [options]',
  `  --concurrency N    saves at once                                         [2]
  --streamer-url URL fetch files through this streamer (http://host:port/_lazy/stream/)
  --root DIR         the content store folder                              [<data-dir>/content]`,
);

export async function workerCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...commonOptions, concurrency: { type: 'string' }, 'streamer-url': { type: 'string' }, root: { type: 'string' } });
  if (values.help) {
    process.stdout.write(WORKER_HELP);
    return 0;
  }
  const { redisQueue, release, ...options } = await baseOptions(values);
  const streamerUrl = str(values, 'streamer-url');
  const lc = (await library()).createLazyContent({
    ...options,
    ...(str(values, 'root') ? { root: str(values, 'root') } : {}),
    save: {
      ...options.save,
      ...(redisQueue ? { queue: redisQueue } : {}),
      worker: true,
      concurrency: int(values, 'concurrency', 2, 1, 256),
      ...(streamerUrl ? { streamerUrl } : {}),
    },
  });
  await lc.start();
  process.stdout.write('lazy-content worker started\n');
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
  });
  try {
    await lc.close();
  } finally {
    await release();
  }
  return 0;
}
