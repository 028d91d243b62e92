import * as path from 'node:path';
import type Keyv from 'keyv';
import type { DataSource } from 'typeorm';
import { z } from 'zod';
import { defaultLogger, type Logger, silentLogger } from './logger.js';
import type { UrlSigner } from './signing/url-signer.js';
import type { EntitlementGuardOptions } from './entitlement/guard.js';
import { catalogDefaults } from './catalog/catalog.js';
import type { SaveQueue } from './save/save-queue.js';
import type { ContentStore } from './store/content-store.js';

/** Where the catalog (remotes, entries, save tasks) lives. */
export interface CatalogOptions {
  /**
   * `postgres://user@host:5432/db` for PostgreSQL (add `?options=-c%20search_path%3Dschema` for a schema), or a
   * SQLite file path (`sqlite:` prefix optional). @default SQLite file '<dataDir>/catalog.sqlite'
   */
  database?: string;
  /** A TypeORM DataSource the app already has, with `catalogEntities` in its entities; used instead of `database`. */
  dataSource?: DataSource;
  /** Bring the schema up to date at start-up. @default true (false for a `dataSource` of the app) */
  runMigrations?: boolean;
  /**
   * Key that seals remote secrets in the database: 32 bytes as base64 or hex. Every process sharing the
   * database needs the same key. @default generated on first start in '<dataDir>/catalog.key' (mode 0600)
   */
  encryptionKey?: string | Buffer;
  /**
   * How long the entries found for a path are remembered before the database is asked again, in ms. Changes
   * made through this process are seen at once; changes made by another process (an import elsewhere) after
   * at most this long. Paths not in the catalog are never remembered. 0 asks the database every time.
   * @default 1000
   */
  lookupCacheMs?: number;
}

/** How links to the streamer are signed. */
export interface SigningOptions {
  /** @default 'hmac-sha256' */
  algorithm?: 'hmac-sha256' | 'rsa-sha256';
  /** HMAC secret, at least 32 bytes (base64 or hex text, or a Buffer). @default generated in '<dataDir>/signing.key' (mode 0600) */
  secret?: string | Buffer;
  /** RSA private key (PEM), on the content side, to sign. */
  privateKey?: string;
  /** RSA public key (PEM), on a streamer that must not be able to sign. */
  publicKey?: string;
  /** A signer of your own; replaces `algorithm` and the keys. */
  signer?: UrlSigner;
  /** How long a link is valid, in seconds. @default 90 */
  expiresInSeconds?: number;
  /** Bind each link to the client address it was made for (only where the streamer sees the same address). @default false */
  bindClientAddress?: boolean;
}

/** Where and how the streamer is reached. */
export interface StreamerOptions {
  /** Path prefix of the streamer endpoint on this app. @default '/_lazy/stream/' */
  prefix?: string;
  /** Absolute base URL of a streamer on another host, port or scheme, ending with its prefix. @default the prefix on this host */
  publicUrl?: string;
  /** Skip the redirect: hand a lazy request straight to the streamer in this process. @default false */
  inline?: boolean;
  /** How long a failed upstream source is skipped while another source of the file remains, in ms. @default 60000 */
  cooldownMs?: number;
  /** Bytes at the end of a file held back from clients until its size and digest are verified. @default 65536 */
  holdbackBytes?: number;
  /**
   * Bytes of each running download kept in memory behind the newest byte clients may read (plus what arrived
   * since), from which clients that follow the download are served without reading the file back from disk.
   * 0 serves every client from disk. @default 8388608 (8 MiB)
   */
  memoryWindowBytes?: number;
}

/** Access control by client certificate (Red Hat entitlement certificates, plain X.509, or a callback). */
export interface EntitlementOptions extends EntitlementGuardOptions {
  /**
   * Request header in which a TLS-terminating proxy forwards the client certificate (URL-encoded PEM, as
   * nginx's `$ssl_client_escaped_cert`, or a one-line PEM). @default 'x-client-cert'
   */
  header?: string;
  /**
   * Addresses or CIDRs of the proxies whose header is believed, e.g. `['127.0.0.1', '10.1.0.0/16']`. From any
   * other address the header is ignored and only the TLS connection's own certificate counts. @default []
   */
  trustedProxies?: string[];
}

/** Saving streamed files into the content store (seed steps 14 to 18). */
export interface SaveOptions {
  /** Where save tasks wait: a SaveQueue (e.g. `BullMqSaveQueue` on Redis). @default the catalog database */
  queue?: SaveQueue;
  /** Run a save worker in this process; `false` where separate worker processes do it. @default true */
  worker?: boolean;
  /** Saves at once in this process. @default 2 */
  concurrency?: number;
  /** Lease of a task while a worker saves it, renewed every third of it, in ms. @default 60000 */
  leaseMs?: number;
  /** Attempts before a task is `failed` for good. @default 5 */
  maxAttempts?: number;
  /** Wait before the second attempt, doubled for each further one (at most one hour), in ms. @default 10000 */
  backoffMs?: number;
  /** How often an idle worker looks for due tasks, in ms. @default 2000 */
  pollMs?: number;
  /**
   * Absolute URL of the streamer (`http://content.internal:8080/_lazy/stream/`) that a worker fetches files
   * through when its own cache does not hold them, like a client. @default none: the worker downloads itself
   */
  streamerUrl?: string;
}

/** The disk cache of streamed files that are not saved (yet, or ever: policy `streamed`). */
export interface CacheOptions {
  /** Folder of the cache; it belongs to the cache alone. @default '<dataDir>/cache' */
  dir?: string;
  /** Size above which least recently used files are evicted (files in use never are), in bytes. @default 10737418240 (10 GiB) */
  maxBytes?: number;
  /**
   * Index of cached files. Files without an index record are removed at start-up, so with the in-memory
   * default a restart empties the cache; give a persistent Keyv store to keep it. @default new Keyv() (memory)
   */
  index?: Keyv;
}

/** Tuning of the saved-content path, which runs on every request. */
export interface ServingOptions {
  /** How long a file's stat, ETag and type are believed before one `stat` checks them again, in ms. @default 1000 */
  metadataTtlMs?: number;
  /** How many files' metadata are remembered. @default 10000 */
  metadataEntries?: number;
  /** Bytes of small files kept in memory, in total; 0 turns the memory cache off. @default 67108864 (64 MiB) */
  memoryCacheBytes?: number;
  /** Largest file kept in memory, in bytes. @default 65536 (64 KiB) */
  memoryCacheFileBytes?: number;
}

export interface LazyContentOptions {
  /** URL path below which content is served (starts and ends with `/`); other requests pass through. @default '/content/' */
  prefix?: string;
  /** Folder for lazy-content's own data (catalog, cache, secrets). Created when missing. @default './.lazy-content' */
  dataDir?: string;
  /** Folder of saved content. @default '<dataDir>/content' */
  root?: string;
  /** A content store to use instead of the `root` folder. @default a FsContentStore on `root` */
  store?: ContentStore;
  /** A path below the prefix that is not there: `'respond'` answers 404, `'pass'` calls the next handler. @default 'respond' */
  notFound?: 'respond' | 'pass';
  /** Methods other than GET and HEAD below the prefix: `'reject'` answers 405 with `Allow`, `'pass'` calls the next handler. @default 'reject' */
  otherMethods?: 'reject' | 'pass';
  /** `Cache-Control` sent with files, or `false` to send none. @default 'public, max-age=0' */
  cacheControl?: string | false;
  /** A request with more ranges than this (after merging overlaps) gets the whole file as a 200. @default 16 */
  maxRanges?: number;
  /** Longest request path accepted below the prefix, in characters; longer ones get 400. @default 4096 */
  maxPathLength?: number;
  /** Caches of the saved-content path. */
  serving?: ServingOptions;
  /** Where log lines go: a pino logger or any object with debug/info/warn/error; `false` for none. @default pino to stdout */
  logger?: Logger | false;
  /** Which sides this instance plays: the content side, the streamer endpoint, or both. @default ['content', 'streamer'] */
  roles?: Array<'content' | 'streamer'>;
  catalog?: CatalogOptions;
  signing?: SigningOptions;
  streamer?: StreamerOptions;
  cache?: CacheOptions;
  /** Which paths need a client certificate, and which. @default none: everything is open */
  entitlement?: EntitlementOptions;
  save?: SaveOptions;
}

export const defaults = {
  prefix: '/content/',
  dataDir: './.lazy-content',
  notFound: 'respond',
  otherMethods: 'reject',
  cacheControl: 'public, max-age=0',
  maxRanges: 16,
  maxPathLength: 4096,
  serving: {
    metadataTtlMs: 1000,
    metadataEntries: 10_000,
    memoryCacheBytes: 64 * 1024 * 1024,
    memoryCacheFileBytes: 64 * 1024,
  } satisfies Required<ServingOptions>,
  roles: ['content', 'streamer'],
  signing: { algorithm: 'hmac-sha256', expiresInSeconds: 90, bindClientAddress: false },
  streamer: { prefix: '/_lazy/stream/', inline: false, cooldownMs: 60_000, holdbackBytes: 64 * 1024, memoryWindowBytes: 8 * 1024 * 1024 },
  cache: { maxBytes: 10 * 1024 * 1024 * 1024 },
  save: { worker: true, concurrency: 2, leaseMs: 60_000, maxAttempts: 5, backoffMs: 10_000, pollMs: 2000 },
} as const;

const int = (min: number, max: number, what: string) =>
  z
    .number({ error: `must be a number (${what})` })
    .int({ error: `must be a whole number (${what})` })
    .min(min, { error: `must be at least ${min} (${what})` })
    .max(max, { error: `must be at most ${max} (${what})` });

const isStore = (v: unknown): v is ContentStore =>
  typeof v === 'object' &&
  v !== null &&
  ['stat', 'open', 'put', 'delete'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');

const isLogger = (v: unknown): v is Logger =>
  typeof v === 'object' &&
  v !== null &&
  ['debug', 'info', 'warn', 'error'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function');

const isDataSource = (v: unknown): v is DataSource =>
  typeof v === 'object' && v !== null && typeof (v as DataSource).initialize === 'function' && 'options' in v;

const isSigner = (v: unknown): v is UrlSigner =>
  typeof v === 'object' && v !== null && typeof (v as UrlSigner).sign === 'function' && typeof (v as UrlSigner).verify === 'function';

const urlPath = (example: string) =>
  z
    .string({ error: `must be a string such as "${example}"` })
    .regex(/^\/[^?#\\]*$/, { error: `must be a URL path that starts with "/", such as "${example}"` })
    .transform((p) => (p.endsWith('/') ? p : `${p}/`));

const keyMaterial = z.union([z.string().min(1), z.instanceof(Buffer)], { error: 'must be base64 or hex text, or a Buffer' });

const schema = z
  .strictObject({
    prefix: urlPath('/content/').default(defaults.prefix),
    dataDir: z.string({ error: 'must be a folder path' }).min(1, { error: 'must not be empty' }).default(defaults.dataDir),
    root: z.string({ error: 'must be a folder path' }).min(1, { error: 'must not be empty' }).optional(),
    store: z
      .custom<ContentStore>(isStore, { error: 'must be a ContentStore (an object with stat, open, put and delete)' })
      .optional(),
    notFound: z.enum(['respond', 'pass'], { error: 'must be "respond" or "pass"' }).default(defaults.notFound),
    otherMethods: z.enum(['reject', 'pass'], { error: 'must be "reject" or "pass"' }).default(defaults.otherMethods),
    cacheControl: z
      .union([z.string().min(1), z.literal(false)], { error: 'must be a Cache-Control value or false' })
      .default(defaults.cacheControl),
    maxRanges: int(1, 1000, 'ranges per request').default(defaults.maxRanges),
    maxPathLength: int(16, 65536, 'characters').default(defaults.maxPathLength),
    serving: z
      .strictObject({
        metadataTtlMs: int(0, 86_400_000, 'milliseconds').default(defaults.serving.metadataTtlMs),
        metadataEntries: int(1, 10_000_000, 'entries').default(defaults.serving.metadataEntries),
        memoryCacheBytes: int(0, Number.MAX_SAFE_INTEGER, 'bytes').default(defaults.serving.memoryCacheBytes),
        memoryCacheFileBytes: int(0, 1024 * 1024 * 1024, 'bytes').default(defaults.serving.memoryCacheFileBytes),
      })
      .prefault({}),
    logger: z
      .union([z.custom<Logger>(isLogger), z.literal(false)], {
        error: 'must be a logger with debug, info, warn and error methods (a pino logger fits), or false',
      })
      .optional(),
    roles: z
      .array(z.enum(['content', 'streamer']), { error: 'must be a list of "content" and "streamer"' })
      .min(1, { error: 'must name at least one of "content" and "streamer"' })
      .default([...defaults.roles]),
    catalog: z
      .strictObject({
        database: z.string({ error: 'must be a postgres:// URL or a SQLite file path' }).min(1).optional(),
        dataSource: z.custom<DataSource>(isDataSource, { error: 'must be a TypeORM DataSource' }).optional(),
        runMigrations: z.boolean({ error: 'must be true or false' }).optional(),
        encryptionKey: keyMaterial.optional(),
        lookupCacheMs: int(0, 86_400_000, 'milliseconds').default(catalogDefaults.lookupCacheMs),
      })
      .prefault({}),
    signing: z
      .strictObject({
        algorithm: z.enum(['hmac-sha256', 'rsa-sha256'], { error: 'must be "hmac-sha256" or "rsa-sha256"' }).default(defaults.signing.algorithm),
        secret: keyMaterial.optional(),
        privateKey: z.string({ error: 'must be a PEM private key' }).includes('PRIVATE KEY', { error: 'must be a PEM private key' }).optional(),
        publicKey: z.string({ error: 'must be a PEM public key' }).includes('PUBLIC KEY', { error: 'must be a PEM public key' }).optional(),
        signer: z.custom<UrlSigner>(isSigner, { error: 'must be a UrlSigner (sign and verify methods)' }).optional(),
        expiresInSeconds: int(1, 86_400, 'seconds').default(defaults.signing.expiresInSeconds),
        bindClientAddress: z.boolean({ error: 'must be true or false' }).default(defaults.signing.bindClientAddress),
      })
      .prefault({})
      .refine((s) => s.algorithm !== 'rsa-sha256' || s.signer || s.privateKey || s.publicKey, {
        error: 'with algorithm "rsa-sha256" needs "privateKey" (content side) or "publicKey" (a streamer that only verifies)',
      }),
    streamer: z
      .strictObject({
        prefix: urlPath('/_lazy/stream/').default(defaults.streamer.prefix),
        publicUrl: z
          .url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL such as "https://streamer.example.com/_lazy/stream/"' })
          .transform((u) => (u.endsWith('/') ? u : `${u}/`))
          .optional(),
        inline: z.boolean({ error: 'must be true or false' }).default(defaults.streamer.inline),
        cooldownMs: int(0, 86_400_000, 'milliseconds').default(defaults.streamer.cooldownMs),
        holdbackBytes: int(1, 1024 * 1024 * 1024, 'bytes').default(defaults.streamer.holdbackBytes),
        memoryWindowBytes: int(0, 1024 * 1024 * 1024, 'bytes').default(defaults.streamer.memoryWindowBytes),
      })
      .prefault({}),
    cache: z
      .strictObject({
        dir: z.string({ error: 'must be a folder path' }).min(1, { error: 'must not be empty' }).optional(),
        maxBytes: int(1, Number.MAX_SAFE_INTEGER, 'bytes').default(defaults.cache.maxBytes),
        index: z
          .custom<Keyv>((v) => typeof v === 'object' && v !== null && typeof (v as Keyv).get === 'function' && typeof (v as Keyv).set === 'function', {
            error: 'must be a Keyv instance',
          })
          .optional(),
      })
      .prefault({}),
    save: z
      .strictObject({
        queue: z
          .custom<SaveQueue>(
            (v) => typeof v === 'object' && v !== null && ['schedule', 'take', 'renew', 'complete', 'fail'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
            { error: 'must be a SaveQueue (schedule, take, renew, complete, fail, list, retry, close)' },
          )
          .optional(),
        worker: z.boolean({ error: 'must be true or false' }).default(defaults.save.worker),
        concurrency: int(1, 256, 'saves at once').default(defaults.save.concurrency),
        leaseMs: int(1000, 86_400_000, 'milliseconds').default(defaults.save.leaseMs),
        maxAttempts: int(1, 1000, 'attempts').default(defaults.save.maxAttempts),
        backoffMs: int(0, 86_400_000, 'milliseconds').default(defaults.save.backoffMs),
        pollMs: int(10, 3_600_000, 'milliseconds').default(defaults.save.pollMs),
        streamerUrl: z
          .url({ protocol: /^https?$/, error: 'must be an absolute http(s) URL such as "http://127.0.0.1:8080/_lazy/stream/"' })
          .transform((u) => (u.endsWith('/') ? u : `${u}/`))
          .optional(),
      })
      .prefault({}),
    // The rules and cache settings are checked by EntitlementGuard, which names each field in its errors.
    entitlement: z
      .strictObject({
        rules: z.array(z.unknown(), { error: 'must be a list of { prefix, ca, policy } rules' }),
        header: z
          .string()
          .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, { error: 'must be an HTTP header name such as "x-client-cert"' })
          .default('x-client-cert')
          .transform((h) => h.toLowerCase()),
        trustedProxies: z.array(z.string(), { error: 'must be a list of addresses or CIDRs' }).default([]),
        store: z.unknown().optional(),
        cacheEntries: z.unknown().optional(),
        cacheMaxTtlMs: z.unknown().optional(),
        callbackTimeoutMs: z.unknown().optional(),
        maxCertificateBytes: z.unknown().optional(),
        pathTreeLimits: z.unknown().optional(),
        now: z.unknown().optional(),
      })
      .optional(),
  })
  .prefault({})
  .refine((o) => !o.streamer.inline || o.roles.includes('streamer'), {
    error: 'option "streamer.inline" streams in this process, so "roles" must include "streamer"',
  })
  .refine((o) => o.roles.includes('content') !== true || o.roles.includes('streamer') !== true || !o.prefix.startsWith(o.streamer.prefix), {
    error: 'option "prefix" must not lie below "streamer.prefix": give the content and the streamer different paths',
  });

export interface ResolvedOptions extends Omit<z.output<typeof schema>, 'logger' | 'root' | 'cache'> {
  root: string;
  cache: Omit<z.output<typeof schema>['cache'], 'dir'> & { dir: string };
  logger: Logger;
}

/** Thrown at start-up for options that cannot work; the message names the option and what it takes. */
export class OptionsError extends TypeError {
  override readonly name = 'OptionsError';
}

/** Validates options once and fills in defaults field by field. */
export function resolveOptions(input: LazyContentOptions | undefined): ResolvedOptions {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      if (issue.code === 'unrecognized_keys') {
        const where = name ? `in "${name}" ` : '';
        return `unknown option ${where}${issue.keys.map((k) => `"${k}"`).join(', ')}: check the spelling against LazyContentOptions`;
      }
      return name ? `option "${name}" ${issue.message}` : issue.message;
    });
    throw new OptionsError(`lazy-content: invalid options:\n  - ${lines.join('\n  - ')}`);
  }
  const o = result.data;
  return {
    ...o,
    root: path.resolve(o.root ?? path.join(o.dataDir, 'content')),
    cache: { ...o.cache, dir: path.resolve(o.cache.dir ?? path.join(o.dataDir, 'cache')) },
    dataDir: path.resolve(o.dataDir),
    logger: o.logger === false ? silentLogger : (o.logger ?? defaultLogger()),
  };
}
