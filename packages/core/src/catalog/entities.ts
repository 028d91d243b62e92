import { EntitySchema, type ValueTransformer } from 'typeorm';

/**
 * Table rows as stored. Times are epoch milliseconds in BIGINT columns and secrets are sealed text, so that
 * one schema means the same on SQLite and PostgreSQL. Long paths are indexed through their SHA-256
 * (`path_hash`): a B-tree index entry has a size limit that a 4 KiB path could pass.
 */
export interface RemoteRow {
  id: number;
  name: string;
  tlsCa: string | null;
  tlsCert: string | null;
  tlsKeySealed: string | null;
  tlsVerify: boolean;
  proxyUrlSealed: string | null;
  headersSealed: string | null;
  basicUsername: string | null;
  basicPasswordSealed: string | null;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  maxConcurrentDownloads: number;
  policy: string;
  createdAt: number;
  updatedAt: number;
}

export interface CatalogEntryRow {
  id: number;
  path: string;
  pathHash: string;
  remoteId: number;
  url: string;
  size: number | null;
  digestAlgorithm: string | null;
  digest: string | null;
  contentType: string | null;
  priority: number;
  savedAt: number | null;
  maxAgeMs: number | null;
}

export interface SaveTaskRow {
  id: number;
  path: string;
  pathHash: string;
  state: 'pending' | 'running' | 'done' | 'failed';
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  leaseOwner: string | null;
  leaseExpiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** PostgreSQL returns BIGINT as a string; every value here fits a double (epoch ms, byte sizes < 2^53). */
const bigintAsNumber: ValueTransformer = {
  to: (v: number | null | undefined) => v,
  from: (v: string | number | null) => (v === null || v === undefined ? v : Number(v)),
};

export const TABLE = {
  remote: 'lazy_content_remote',
  entry: 'lazy_content_catalog_entry',
  saveTask: 'lazy_content_save_task',
} as const;

export const RemoteSchema = new EntitySchema<RemoteRow>({
  name: 'LazyContentRemote',
  tableName: TABLE.remote,
  columns: {
    id: { type: 'integer', primary: true, generated: 'increment' },
    name: { type: 'varchar', length: 200, unique: true },
    tlsCa: { name: 'tls_ca', type: 'text', nullable: true },
    tlsCert: { name: 'tls_cert', type: 'text', nullable: true },
    tlsKeySealed: { name: 'tls_key_sealed', type: 'text', nullable: true },
    tlsVerify: { name: 'tls_verify', type: 'boolean', default: true },
    proxyUrlSealed: { name: 'proxy_url_sealed', type: 'text', nullable: true },
    headersSealed: { name: 'headers_sealed', type: 'text', nullable: true },
    basicUsername: { name: 'basic_username', type: 'varchar', length: 200, nullable: true },
    basicPasswordSealed: { name: 'basic_password_sealed', type: 'text', nullable: true },
    connectTimeoutMs: { name: 'connect_timeout_ms', type: 'integer' },
    headersTimeoutMs: { name: 'headers_timeout_ms', type: 'integer' },
    bodyIdleTimeoutMs: { name: 'body_idle_timeout_ms', type: 'integer' },
    maxConcurrentDownloads: { name: 'max_concurrent_downloads', type: 'integer' },
    policy: { type: 'varchar', length: 16 },
    createdAt: { name: 'created_at', type: 'bigint', transformer: bigintAsNumber },
    updatedAt: { name: 'updated_at', type: 'bigint', transformer: bigintAsNumber },
  },
});

export const CatalogEntrySchema = new EntitySchema<CatalogEntryRow>({
  name: 'LazyContentCatalogEntry',
  tableName: TABLE.entry,
  columns: {
    id: { type: 'integer', primary: true, generated: 'increment' },
    path: { type: 'text' },
    pathHash: { name: 'path_hash', type: 'varchar', length: 64 },
    remoteId: { name: 'remote_id', type: 'integer' },
    url: { type: 'text' },
    size: { type: 'bigint', nullable: true, transformer: bigintAsNumber },
    digestAlgorithm: { name: 'digest_algorithm', type: 'varchar', length: 16, nullable: true },
    digest: { type: 'varchar', length: 128, nullable: true },
    contentType: { name: 'content_type', type: 'varchar', length: 255, nullable: true },
    priority: { type: 'integer', default: 0 },
    savedAt: { name: 'saved_at', type: 'bigint', nullable: true, transformer: bigintAsNumber },
    maxAgeMs: { name: 'max_age_ms', type: 'bigint', nullable: true, transformer: bigintAsNumber },
  },
  indices: [{ name: 'lazy_content_entry_path_remote', columns: ['pathHash', 'remoteId'], unique: true }],
});

export const SaveTaskSchema = new EntitySchema<SaveTaskRow>({
  name: 'LazyContentSaveTask',
  tableName: TABLE.saveTask,
  columns: {
    id: { type: 'integer', primary: true, generated: 'increment' },
    path: { type: 'text' },
    pathHash: { name: 'path_hash', type: 'varchar', length: 64 },
    state: { type: 'varchar', length: 16 },
    attempts: { type: 'integer', default: 0 },
    nextAttemptAt: { name: 'next_attempt_at', type: 'bigint', transformer: bigintAsNumber },
    lastError: { name: 'last_error', type: 'text', nullable: true },
    leaseOwner: { name: 'lease_owner', type: 'varchar', length: 200, nullable: true },
    leaseExpiresAt: { name: 'lease_expires_at', type: 'bigint', nullable: true, transformer: bigintAsNumber },
    createdAt: { name: 'created_at', type: 'bigint', transformer: bigintAsNumber },
    updatedAt: { name: 'updated_at', type: 'bigint', transformer: bigintAsNumber },
  },
});

/** Add these to the `entities` of a DataSource your app already has, with `catalogMigrations` to its `migrations`. */
export const catalogEntities = [RemoteSchema, CatalogEntrySchema, SaveTaskSchema];
