import { createHash } from 'node:crypto';
import { type DataSource, In, type Repository } from 'typeorm';
import { LRUCache } from 'lru-cache';
import { LazyContentError } from '../errors.js';
import { normalizePath } from '../path.js';
import { type CatalogEntryRow, CatalogEntrySchema, type RemoteRow, RemoteSchema, TABLE } from './entities.js';
import type { SecretBox } from './secrets.js';
import {
  type CatalogEntry,
  type CatalogEntryInput,
  DIGEST_ALGORITHMS,
  type DigestAlgorithm,
  DOWNLOAD_POLICIES,
  type DownloadPolicy,
  type Remote,
  type RemoteInput,
  type RemoteView,
} from './types.js';

export const remoteDefaults = {
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 30_000,
  bodyIdleTimeoutMs: 30_000,
  maxConcurrentDownloads: 10,
  policy: 'on_demand' as DownloadPolicy,
};

/** Rows per INSERT: well under SQLite's and PostgreSQL's limits on bound parameters (10 columns a row). */
const BATCH = 500;

/** PostgreSQL takes a batch as one array per column, so a batch can be much larger. */
const PG_BATCH = 5000;

const ENTRY_COLUMNS = ['path', 'path_hash', 'remote_id', 'url', 'size', 'digest_algorithm', 'digest', 'content_type', 'priority', 'max_age_ms'] as const;
type EntryValues = [string, string, number, string, number | null, string | null, string | null, string | null, number, number | null];
const PG_TYPES = ['text', 'varchar', 'int', 'text', 'bigint', 'varchar', 'varchar', 'varchar', 'int', 'bigint'];
const ON_CONFLICT =
  `ON CONFLICT ("path_hash", "remote_id") DO UPDATE SET ` +
  ENTRY_COLUMNS.filter((c) => c !== 'path_hash' && c !== 'remote_id')
    .map((c) => `"${c}" = excluded."${c}"`)
    .join(', ');
const INSERT_INTO = `INSERT INTO "${TABLE.entry}" (${ENTRY_COLUMNS.map((c) => `"${c}"`).join(', ')})`;

/*
 * Plain parameterised SQL rather than TypeORM's query builder, whose per-row work made 100,000 rows take
 * several times longer. Both dialects share ON CONFLICT (SQLite ≥ 3.24).
 */
function sqliteUpsert(rows: EntryValues[]): [string, unknown[]] {
  const tuple = `(${ENTRY_COLUMNS.map(() => '?').join(', ')})`;
  return [`${INSERT_INTO} VALUES ${rows.map(() => tuple).join(', ')} ${ON_CONFLICT}`, rows.flat()];
}

/** One array parameter per column, unnested: a handful of parameters however many rows. */
function pgUpsert(rows: EntryValues[]): [string, unknown[]] {
  const arrays = ENTRY_COLUMNS.map((_, i) => rows.map((r) => r[i]));
  const unnest = PG_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ');
  return [`${INSERT_INTO} SELECT * FROM unnest(${unnest}) ${ON_CONFLICT}`, arrays];
}

export function pathHash(path: string): string {
  return createHash('sha256').update(path).digest('hex');
}

function invalid(message: string): LazyContentError {
  return new LazyContentError('INVALID_INPUT', message);
}

/** Checks and normalises a catalog path the way request paths are normalised, so that lookups find it. */
export function catalogKey(path: string): string {
  let normalized;
  try {
    normalized = normalizePath(path.replace(/^\/+/, ''), 4096, { decoded: true });
  } catch (err) {
    throw invalid(`catalog path ${JSON.stringify(path)} is not valid: ${(err as Error).message}`);
  }
  if (normalized.directory) throw invalid(`catalog path ${JSON.stringify(path)} names a folder, not a file`);
  return normalized.key;
}

function checkUrl(url: string, what: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`${what} is not an absolute URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid(`${what} must be http or https`);
}

function positiveInt(value: number | undefined, name: string): void {
  if (value !== undefined && (!Number.isInteger(value) || value <= 0)) throw invalid(`remote ${name} must be a positive whole number`);
}

export interface CatalogLookupOptions {
  /**
   * How long the entries found for a path are remembered, in ms: concurrent requests for one file share one
   * query anyway, and with this the requests that follow (the redirect, then the streamer) skip the database.
   * Changes made through this Catalog are seen at once, others after at most this long. Paths the catalog does
   * not have are never remembered. @default 1000
   */
  lookupCacheMs?: number;
  /** Paths whose entries are remembered. @default 10000 */
  lookupCacheEntries?: number;
}

export const catalogDefaults = {
  lookupCacheMs: 1000,
  lookupCacheEntries: 10_000,
} satisfies Required<CatalogLookupOptions>;

/** The catalog: remotes and the entries that say where each lazily loaded file comes from. */
export class Catalog {
  private readonly remotes: Repository<RemoteRow>;
  private readonly entries: Repository<CatalogEntryRow>;
  private readonly remoteCache = new Map<number, Remote>();
  private readonly lookupSql: string;
  /** Entries found by `lookup`, by key, with when they were read; only keys the catalog has. */
  private readonly found: LRUCache<string, { entries: CatalogEntry[]; at: number }>;
  /** Lookups on their way to the database, by key: concurrent requests for one file share one query. */
  private readonly lookups = new Map<string, Promise<CatalogEntry[]>>();
  /** Bumped by every change made through this catalog, so that a lookup begun before it is not kept. */
  private generation = 0;
  private readonly lookupCacheMs: number;

  constructor(
    readonly dataSource: DataSource,
    private readonly secrets: SecretBox,
    options: CatalogLookupOptions = {},
  ) {
    this.lookupCacheMs = options.lookupCacheMs ?? catalogDefaults.lookupCacheMs;
    this.found = new LRUCache({ max: Math.max(1, options.lookupCacheEntries ?? catalogDefaults.lookupCacheEntries) });
    this.remotes = dataSource.getRepository(RemoteSchema);
    this.entries = dataSource.getRepository(CatalogEntrySchema);
    const param = dataSource.options.type === 'postgres' ? '$1' : '?';
    this.lookupSql =
      `SELECT "id", "path", "remote_id", "url", "size", "digest_algorithm", "digest", "content_type", "priority", "saved_at", "max_age_ms" ` +
      `FROM "${TABLE.entry}" WHERE "path_hash" = ${param} ORDER BY "priority" ASC, "id" ASC`;
  }

  // ---- remotes ----

  async addRemote(input: RemoteInput): Promise<RemoteView> {
    if (typeof input.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(input.name)) {
      throw invalid('remote name must be 1–200 letters, digits, ".", "_" or "-", starting with a letter or digit');
    }
    if (await this.remotes.findOneBy({ name: input.name })) throw invalid(`remote "${input.name}" exists already`);
    const now = Date.now();
    const row = this.toRow({ ...input }, { createdAt: now, updatedAt: now } as RemoteRow);
    const saved = await this.remotes.save(row);
    return viewOf(this.fromRow(saved));
  }

  async updateRemote(name: string, patch: Partial<Omit<RemoteInput, 'name'>>): Promise<RemoteView> {
    return this.changing(() => this.updateRemoteNow(name, patch));
  }

  private async updateRemoteNow(name: string, patch: Partial<Omit<RemoteInput, 'name'>>): Promise<RemoteView> {
    const row = await this.remotes.findOneBy({ name });
    if (!row) throw new LazyContentError('NOT_FOUND', `no remote named "${name}"`);
    const current = this.fromRow(row);
    const merged: RemoteInput = {
      ...current,
      ...patch,
      tls: { ...current.tls, ...(patch.tls ?? {}) },
      name,
    };
    const saved = await this.remotes.save(this.toRow(merged, { ...row, updatedAt: Date.now() }));
    this.remoteCache.delete(row.id);
    return viewOf(this.fromRow(saved));
  }

  /** Removes a remote and, with it, every catalog entry that names it. */
  async removeRemote(name: string): Promise<boolean> {
    return this.changing(() => this.removeRemoteNow(name));
  }

  private async removeRemoteNow(name: string): Promise<boolean> {
    const row = await this.remotes.findOneBy({ name });
    if (!row) return false;
    await this.dataSource.transaction(async (m) => {
      await m.getRepository(CatalogEntrySchema).delete({ remoteId: row.id });
      await m.getRepository(RemoteSchema).delete({ id: row.id });
    });
    this.remoteCache.delete(row.id);
    return true;
  }

  async getRemote(name: string): Promise<RemoteView | null> {
    const row = await this.remotes.findOneBy({ name });
    return row ? viewOf(this.fromRow(row)) : null;
  }

  async listRemotes(): Promise<RemoteView[]> {
    return (await this.remotes.find({ order: { name: 'ASC' } })).map((r) => viewOf(this.fromRow(r)));
  }

  /** A remote with its secrets in clear, for the download that needs them; cached per process. */
  async remoteById(id: number): Promise<Remote | null> {
    const cached = this.remoteCache.get(id);
    if (cached) return cached;
    const row = await this.remotes.findOneBy({ id });
    if (!row) return null;
    const remote = this.fromRow(row);
    this.remoteCache.set(id, remote);
    return remote;
  }

  // ---- entries ----

  /**
   * Adds or updates entries in bulk: an entry is identified by its path and remote, so importing the same
   * list twice changes nothing. Runs in one transaction: all or nothing. Returns how many rows were written
   * (a path listed twice counts once when both fall in one batch).
   */
  async addEntries(input: Iterable<CatalogEntryInput> | AsyncIterable<CatalogEntryInput>): Promise<number> {
    return this.changing(() => this.addEntriesNow(input));
  }

  private async addEntriesNow(input: Iterable<CatalogEntryInput> | AsyncIterable<CatalogEntryInput>): Promise<number> {
    const remoteIds = new Map((await this.remotes.find({ select: { id: true, name: true } })).map((r) => [r.name, r.id]));
    let written = 0;
    const postgres = this.dataSource.options.type === 'postgres';
    const statement = postgres ? pgUpsert : sqliteUpsert;
    await this.dataSource.transaction(async (m) => {
      // Keyed by path and remote: a path listed twice in one batch keeps its last values, as it would
      // across batches (PostgreSQL refuses to update one row twice in one statement).
      let rows = new Map<string, EntryValues>();
      const flush = async () => {
        if (rows.size === 0) return;
        const [sql, params] = statement([...rows.values()]);
        await m.query(sql, params);
        written += rows.size;
        rows = new Map();
      };
      for await (const entry of input) {
        const r = this.entryRow(entry, remoteIds);
        rows.set(`${r.pathHash}:${r.remoteId}`, [r.path, r.pathHash, r.remoteId, r.url, r.size, r.digestAlgorithm, r.digest, r.contentType, r.priority, r.maxAgeMs]);
        if (rows.size === (postgres ? PG_BATCH : BATCH)) await flush();
      }
      await flush();
    });
    return written;
  }

  /** Removes the entries of these paths (of one remote, when given). Returns how many were removed. */
  async removeEntries(paths: Iterable<string>, remote?: string): Promise<number> {
    return this.changing(() => this.removeEntriesNow(paths, remote));
  }

  private async removeEntriesNow(paths: Iterable<string>, remote?: string): Promise<number> {
    let remoteId: number | undefined;
    if (remote !== undefined) {
      const row = await this.remotes.findOneBy({ name: remote });
      if (!row) throw new LazyContentError('NOT_FOUND', `no remote named "${remote}"`);
      remoteId = row.id;
    }
    const hashes = [...paths].map((p) => pathHash(catalogKey(p)));
    let removed = 0;
    for (let i = 0; i < hashes.length; i += BATCH) {
      const chunk = hashes.slice(i, i + BATCH);
      const result = await this.entries.delete(remoteId === undefined ? { pathHash: In(chunk) } : { pathHash: In(chunk), remoteId });
      removed += result.affected ?? 0;
    }
    return removed;
  }

  /**
   * The sources of one file, in the order to try them (priority, then id); empty when the path is not in the
   * catalog. One indexed query.
   */
  lookup(key: string): Promise<CatalogEntry[]> {
    const now = Date.now();
    const hit = this.found.get(key);
    if (hit && now - hit.at < this.lookupCacheMs) return Promise.resolve(hit.entries);
    let pending = this.lookups.get(key);
    if (!pending) {
      const generation = this.generation;
      pending = this.query(key)
        .then((entries) => {
          // Only files the catalog has are remembered: a path added elsewhere is found at once.
          if (entries.length > 0 && this.lookupCacheMs > 0 && generation === this.generation) this.found.set(key, { entries, at: now });
          return entries;
        })
        .finally(() => {
          // Only this query: a change may have started a newer one for the same key meanwhile.
          if (this.lookups.get(key) === pending) this.lookups.delete(key);
        });
      this.lookups.set(key, pending);
    }
    return pending;
  }

  private async query(key: string): Promise<CatalogEntry[]> {
    const rows = (await this.dataSource.query(this.lookupSql, [pathHash(key)])) as Array<Record<string, unknown>>;
    return rows.filter((r) => r.path === key).map(entryFromSql);
  }

  /** Runs a change; lookups begun before it ends are not remembered. */
  private async changing<T>(change: () => Promise<T>): Promise<T> {
    this.changed();
    try {
      return await change();
    } finally {
      this.changed();
    }
  }

  /** Forgets what lookups found. */
  private changed(): void {
    this.generation++;
    this.found.clear();
    this.lookups.clear();
  }

  /**
   * The entries of one remote whose paths start with `prefix` (a key prefix such as `demo/`; `''` for all of
   * them), in one query: what an import compares the upstream with. Empty when there is no such remote.
   */
  async entriesUnder(remote: string, prefix: string): Promise<CatalogEntry[]> {
    const row = await this.remotes.findOneBy({ name: remote });
    if (!row) return [];
    const postgres = this.dataSource.options.type === 'postgres';
    let sql =
      `SELECT "id", "path", "remote_id", "url", "size", "digest_algorithm", "digest", "content_type", "priority", "saved_at", "max_age_ms" ` +
      `FROM "${TABLE.entry}" WHERE "remote_id" = ${postgres ? '$1' : '?'}`;
    const params: unknown[] = [row.id];
    if (prefix !== '') {
      // substr, not LIKE: SQLite's LIKE ignores ASCII case. Both count characters (code points), not bytes.
      sql += postgres ? ` AND substr("path", 1, $2::int) = $3` : ` AND substr("path", 1, ?) = ?`;
      params.push([...prefix].length, prefix);
    }
    const rows = (await this.dataSource.query(sql, params)) as Array<Record<string, unknown>>;
    return rows.map(entryFromSql);
  }

  /** Records that a path is saved in the content store (or, with `null`, that it no longer is). */
  async markSaved(key: string, at: Date | null = new Date()): Promise<void> {
    return this.changing(() => this.markSavedNow(key, at));
  }

  private async markSavedNow(key: string, at: Date | null): Promise<void> {
    await this.entries.update({ pathHash: pathHash(key) }, { savedAt: at === null ? null : at.getTime() });
  }

  /**
   * Entries in path order, a page at a time, optionally below a path prefix (`repo/Packages/`), with their
   * remote's name. For listing; not for the request path.
   */
  async listEntries(options: { prefix?: string; limit?: number; after?: string } = {}): Promise<Array<CatalogEntry & { remote: string }>> {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const pg = this.dataSource.options.type === 'postgres';
    const params: unknown[] = [];
    const p = () => (pg ? `$${params.length}` : '?');
    const where: string[] = [];
    if (options.prefix) {
      params.push(`${options.prefix.replace(/^\/+/, '').replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
      where.push(`e."path" LIKE ${p()} ESCAPE '\\'`);
    }
    if (options.after !== undefined) {
      params.push(options.after);
      where.push(`e."path" > ${p()}`);
    }
    const rows = (await this.dataSource.query(
      `SELECT e."id", e."path", e."remote_id", e."url", e."size", e."digest_algorithm", e."digest", e."content_type", e."priority", e."saved_at", e."max_age_ms", r."name" AS "remote"
       FROM "${TABLE.entry}" e JOIN "${TABLE.remote}" r ON r."id" = e."remote_id"
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e."path", e."priority", e."id" LIMIT ${limit}`,
      params,
    )) as Array<Record<string, unknown>>;
    return rows.map((r) => ({ ...entryFromSql(r), remote: String(r.remote) }));
  }

  /** Number of entries, for status output. */
  countEntries(): Promise<number> {
    return this.entries.count();
  }

  // ---- conversions ----

  private entryRow(e: CatalogEntryInput, remoteIds: Map<string, number>): Omit<CatalogEntryRow, 'id' | 'savedAt'> {
    if (e.maxAgeMs != null && (!Number.isSafeInteger(e.maxAgeMs) || e.maxAgeMs < 0)) {
      throw invalid(`entry ${JSON.stringify(e.path)}: maxAgeMs must be a whole number of milliseconds`);
    }
    const path = catalogKey(e.path);
    const remoteId = remoteIds.get(e.remote);
    if (remoteId === undefined) throw invalid(`entry ${JSON.stringify(e.path)} names an unknown remote "${e.remote}"`);
    checkUrl(e.url, `entry ${JSON.stringify(e.path)}: url`);
    if (e.size != null && (!Number.isSafeInteger(e.size) || e.size < 0)) throw invalid(`entry ${JSON.stringify(e.path)}: size must be a whole number of bytes`);
    const algorithm = e.digestAlgorithm ?? (e.digest ? 'sha256' : null);
    if (algorithm !== null && !DIGEST_ALGORITHMS.includes(algorithm)) {
      throw invalid(`entry ${JSON.stringify(e.path)}: digest algorithm must be one of ${DIGEST_ALGORITHMS.join(', ')}`);
    }
    const digest = e.digest ? e.digest.toLowerCase() : null;
    if (digest !== null && !/^[0-9a-f]+$/.test(digest)) throw invalid(`entry ${JSON.stringify(e.path)}: digest must be hexadecimal`);
    return {
      path,
      pathHash: pathHash(path),
      remoteId,
      url: e.url,
      size: e.size ?? null,
      digestAlgorithm: digest ? algorithm : null,
      digest,
      contentType: e.contentType ?? null,
      priority: e.priority ?? 0,
      maxAgeMs: e.maxAgeMs ?? null,
    };
  }

  private toRow(input: RemoteInput, base: RemoteRow): RemoteRow {
    if (input.proxyUrl) checkUrl(input.proxyUrl, 'remote proxyUrl');
    positiveInt(input.connectTimeoutMs, 'connectTimeoutMs');
    positiveInt(input.headersTimeoutMs, 'headersTimeoutMs');
    positiveInt(input.bodyIdleTimeoutMs, 'bodyIdleTimeoutMs');
    positiveInt(input.maxConcurrentDownloads, 'maxConcurrentDownloads');
    if (input.policy !== undefined && !DOWNLOAD_POLICIES.includes(input.policy)) {
      throw invalid(`remote policy must be one of ${DOWNLOAD_POLICIES.join(', ')}`);
    }
    if (Boolean(input.tls?.cert) !== Boolean(input.tls?.key)) throw invalid('remote tls.cert and tls.key go together');
    return {
      ...base,
      name: input.name,
      tlsCa: input.tls?.ca ?? null,
      tlsCert: input.tls?.cert ?? null,
      tlsKeySealed: this.secrets.seal(input.tls?.key),
      tlsVerify: input.tls?.verify ?? true,
      proxyUrlSealed: this.secrets.seal(input.proxyUrl),
      headersSealed: this.secrets.seal(input.headers ? JSON.stringify(input.headers) : null),
      basicUsername: input.basicAuth?.username ?? null,
      basicPasswordSealed: this.secrets.seal(input.basicAuth?.password),
      connectTimeoutMs: input.connectTimeoutMs ?? remoteDefaults.connectTimeoutMs,
      headersTimeoutMs: input.headersTimeoutMs ?? remoteDefaults.headersTimeoutMs,
      bodyIdleTimeoutMs: input.bodyIdleTimeoutMs ?? remoteDefaults.bodyIdleTimeoutMs,
      maxConcurrentDownloads: input.maxConcurrentDownloads ?? remoteDefaults.maxConcurrentDownloads,
      policy: input.policy ?? remoteDefaults.policy,
    };
  }

  private fromRow(row: RemoteRow): Remote {
    const headers = this.secrets.open(row.headersSealed);
    const password = this.secrets.open(row.basicPasswordSealed);
    return {
      id: row.id,
      name: row.name,
      tls: { ca: row.tlsCa, cert: row.tlsCert, key: this.secrets.open(row.tlsKeySealed), verify: Boolean(row.tlsVerify) },
      proxyUrl: this.secrets.open(row.proxyUrlSealed),
      headers: headers === null ? null : (JSON.parse(headers) as Record<string, string>),
      basicAuth: row.basicUsername !== null && password !== null ? { username: row.basicUsername, password } : null,
      connectTimeoutMs: row.connectTimeoutMs,
      headersTimeoutMs: row.headersTimeoutMs,
      bodyIdleTimeoutMs: row.bodyIdleTimeoutMs,
      maxConcurrentDownloads: row.maxConcurrentDownloads,
      policy: row.policy as DownloadPolicy,
      createdAt: new Date(row.createdAt),
      updatedAt: new Date(row.updatedAt),
    };
  }
}

const numberOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function entryFromSql(row: Record<string, unknown>): CatalogEntry {
  const savedAt = numberOrNull(row.saved_at);
  return {
    id: Number(row.id),
    path: String(row.path),
    remoteId: Number(row.remote_id),
    url: String(row.url),
    size: numberOrNull(row.size),
    digestAlgorithm: (row.digest_algorithm ?? null) as DigestAlgorithm | null,
    digest: (row.digest ?? null) as string | null,
    contentType: (row.content_type ?? null) as string | null,
    priority: Number(row.priority),
    savedAt: savedAt === null ? null : new Date(savedAt),
    maxAgeMs: numberOrNull(row.max_age_ms),
  };
}

/** A proxy URL without its credentials. */
function redactUrl(url: string | null): string | null {
  if (url === null) return null;
  const parsed = new URL(url);
  if (parsed.username || parsed.password) {
    parsed.username = parsed.username ? 'set' : '';
    parsed.password = parsed.password ? 'set' : '';
  }
  return parsed.toString();
}

/** What the API returns for a remote: secrets replaced by the word `set`. */
export function viewOf(remote: Remote): RemoteView {
  return {
    ...remote,
    tls: { ca: remote.tls.ca, cert: remote.tls.cert, key: remote.tls.key ? 'set' : null, verify: remote.tls.verify },
    proxyUrl: redactUrl(remote.proxyUrl),
    headers: remote.headers ? Object.fromEntries(Object.keys(remote.headers).map((k) => [k, 'set' as const])) : null,
    basicAuth: remote.basicAuth ? { username: remote.basicAuth.username, password: 'set' } : null,
  };
}
