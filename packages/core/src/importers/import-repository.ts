import { catalogKey, remoteDefaults } from '../catalog/catalog.js';
import type { CatalogEntry, CatalogEntryInput, DownloadPolicy, Remote, RemoteInput } from '../catalog/types.js';
import { LazyContentError } from '../errors.js';
import type { ImportProgress, LazyContent } from '../lazy-content.js';
import { fileImporter } from './file.js';
import type { Importer, ImporterContext } from './importer.js';
import { MetadataClient, metadataClientDefaults } from './metadata-client.js';
import { directoryUrl, prefixKeyOf } from './paths.js';
import { yumImporter } from './yum.js';

export type RepositoryType = 'file' | 'yum';

/** The importers `importRepository` knows by name. */
export const importers: Readonly<Record<RepositoryType, Importer>> = { file: fileImporter, yum: yumImporter };

/** Where an import is, for a progress display. */
export type RepositoryImportProgress =
  /** Reading upstream metadata: entries found so far, and how many there will be once a file says so. */
  | { phase: 'reading'; found: number; expected: number | null; file: string | null }
  /** Writing the entries to the catalog. */
  | { phase: 'writing'; entries: number }
  /** Downloading and saving the files of an `immediate` remote. */
  | ({ phase: 'downloading' } & ImportProgress);

export interface ImportRepositoryOptions {
  /** Base URL of the upstream repository (the folder of `PULP_MANIFEST`, or of `repodata/`). */
  url: string;
  /** What the repository is: `file` (Pulp file repository), `yum` (RPM repository), or an importer of yours. */
  type: RepositoryType | Importer;
  /** Where its files go, relative to the content prefix, e.g. `demo-file/`. `''` puts them at the root. */
  prefix: string;
  /** Name of the remote that the entries name; created when missing. */
  remote: string;
  /** The remote's download policy: set when the remote is created, changed when it exists. @default the remote's, else 'on_demand' */
  policy?: DownloadPolicy;
  /**
   * How to reach the upstream (TLS, proxy, headers, timeouts…): used to read the repository, then saved to the
   * remote (created with them, or updated). @default the remote's settings, else the defaults of `addRemote`
   */
  remoteSettings?: Omit<RemoteInput, 'name'>;
  /** Age after which metadata that changes in place (`repomd.xml`, `PULP_MANIFEST`) is fetched again. @default 300000 (5 minutes) */
  maxAgeMs?: number;
  /** Called as the import goes: reading, writing, then downloading for `immediate` remotes. */
  onProgress?: (progress: RepositoryImportProgress) => void;
  /** @default 'lazy-content' */
  userAgent?: string;
  /**
   * Tries per metadata file (a failed connection, a timeout, a 408/425/429/5xx answer is tried again, with a
   * delay that doubles from `retryDelayMs`, or the upstream's Retry-After). @default 3
   */
  attempts?: number;
  /** @default 500 */
  retryDelayMs?: number;
}

/** What an import changed: counts of catalog entries of this remote under this prefix. */
export interface RepositoryImportResult {
  /** Files new to the catalog. */
  added: number;
  /** Files whose URL, size, digest or freshness changed. */
  updated: number;
  unchanged: number;
  /** Files gone upstream, removed from the catalog. */
  removed: number;
  /** Files of the repository, its metadata included. */
  total: number;
  /** What the remote's policy did: saves scheduled (`background`), files downloaded (`immediate`). */
  progress: ImportProgress;
}

export const importRepositoryDefaults = {
  maxAgeMs: 5 * 60_000,
  userAgent: 'lazy-content',
} satisfies Partial<Record<keyof ImportRepositoryOptions, unknown>>;

/** Entries read from upstream and read every 1,000 of them: enough for a terminal, few enough to cost nothing. */
const PROGRESS_EVERY = 1000;

function invalid(message: string): LazyContentError {
  return new LazyContentError('INVALID_INPUT', `importRepository: ${message}`);
}

interface CheckedOptions {
  baseUrl: string;
  importer: Importer;
  prefixKey: string;
  maxAgeMs: number;
}

function check(o: ImportRepositoryOptions): CheckedOptions {
  let baseUrl: string;
  try {
    const url = new URL(o.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    baseUrl = directoryUrl(o.url);
  } catch {
    throw invalid(`option "url" must be an absolute http or https URL (got ${JSON.stringify(o.url)})`);
  }
  const importer = typeof o.type === 'string' ? importers[o.type] : o.type;
  if (importer === undefined || typeof importer.read !== 'function') {
    throw invalid(`option "type" must be one of ${Object.keys(importers).join(', ')}, or an Importer (got ${JSON.stringify(o.type)})`);
  }
  if (typeof o.prefix !== 'string') throw invalid('option "prefix" must be a path such as "demo-file/" ("" for the root)');
  let prefixKey: string;
  try {
    prefixKey = prefixKeyOf(o.prefix);
  } catch (err) {
    throw invalid(`option "prefix" ${JSON.stringify(o.prefix)} is not a valid path: ${(err as Error).message}`);
  }
  if (typeof o.remote !== 'string' || o.remote === '') throw invalid('option "remote" must be the name of a remote');
  const maxAgeMs = o.maxAgeMs ?? importRepositoryDefaults.maxAgeMs;
  if (!Number.isSafeInteger(maxAgeMs) || maxAgeMs < 0) throw invalid('option "maxAgeMs" must be a whole number of milliseconds');
  if (o.attempts !== undefined && (!Number.isInteger(o.attempts) || o.attempts < 1 || o.attempts > 100)) {
    throw invalid('option "attempts" must be a whole number from 1 to 100');
  }
  if (o.retryDelayMs !== undefined && (!Number.isInteger(o.retryDelayMs) || o.retryDelayMs < 0 || o.retryDelayMs > 600_000)) {
    throw invalid('option "retryDelayMs" must be a whole number of milliseconds from 0 to 600000');
  }
  return { baseUrl, importer, prefixKey, maxAgeMs };
}

/** The settings to read the repository with: the remote's, changed by the import's; nothing saved yet. */
function effectiveRemote(name: string, current: Remote | null, patch: Omit<RemoteInput, 'name'>): Remote {
  const now = new Date();
  const base: Remote = current ?? {
    id: 0,
    name,
    tls: { ca: null, cert: null, key: null, verify: true },
    proxyUrl: null,
    headers: null,
    basicAuth: null,
    ...remoteDefaults,
    createdAt: now,
    updatedAt: now,
  };
  const merged = { ...base, tls: { ...base.tls } };
  for (const [field, value] of Object.entries(patch) as Array<[keyof typeof patch, unknown]>) {
    if (value === undefined) continue;
    if (field === 'tls') Object.assign(merged.tls, Object.fromEntries(Object.entries(value as object).filter(([, v]) => v !== undefined)));
    else Object.assign(merged, { [field]: value });
  }
  return merged;
}

function settingsOf(remote: Remote): string {
  const { id: _id, createdAt: _c, updatedAt: _u, ...settings } = remote;
  return JSON.stringify(settings);
}

/** The fields an import writes, as the catalog holds them: what tells an updated entry from an unchanged one. */
function sameEntry(before: CatalogEntry, after: CatalogEntryInput): boolean {
  const digest = after.digest ? after.digest.toLowerCase() : null;
  return (
    before.url === after.url &&
    before.size === (after.size ?? null) &&
    before.digest === digest &&
    before.digestAlgorithm === (digest ? (after.digestAlgorithm ?? 'sha256') : null) &&
    before.contentType === (after.contentType ?? null) &&
    before.priority === (after.priority ?? 0) &&
    before.maxAgeMs === (after.maxAgeMs ?? null)
  );
}

/** Whether the bytes of the file changed, so that a copy saved or cached before is stale. */
function contentChanged(before: CatalogEntry, after: CatalogEntryInput): boolean {
  const digest = after.digest ? after.digest.toLowerCase() : null;
  return before.size !== (after.size ?? null) || before.digest !== digest;
}

/**
 * Fills the catalog from an upstream repository's own metadata: reads the whole repository first (a failure
 * changes nothing, the remote included), then creates or updates the remote, writes the entries with
 * `importEntries` (which applies the remote's policy), and removes the entries of this remote under this
 * prefix that are gone upstream. Importing again with nothing changed upstream changes nothing.
 *
 * ```ts
 * const result = await importRepository(lc, { url: 'https://cdn.example/rhel9/baseos/', type: 'yum', prefix: 'rhel9/baseos/', remote: 'rhel9' });
 * // { added: 1523, updated: 0, unchanged: 0, removed: 0, total: 1523, progress: { entries: 1523, … } }
 * ```
 */
export async function importRepository(lc: LazyContent, options: ImportRepositoryOptions): Promise<RepositoryImportResult> {
  const { baseUrl, importer, prefixKey, maxAgeMs } = check(options);
  const name = options.remote;
  const onProgress = options.onProgress ?? (() => undefined);
  const catalog = await lc.catalog();
  const view = await catalog.getRemote(name);
  const current = view ? await catalog.remoteById(view.id) : null;
  const patch: Omit<RemoteInput, 'name'> = { ...options.remoteSettings, ...(options.policy ? { policy: options.policy } : {}) };

  // Read everything before writing anything.
  const entries = new Map<string, CatalogEntryInput>();
  const reading = { phase: 'reading' as const, found: 0, expected: null as number | null, file: null as string | null };
  const remote = effectiveRemote(name, current, patch);
  const client = new MetadataClient(remote, {
    userAgent: options.userAgent ?? importRepositoryDefaults.userAgent,
    attempts: options.attempts ?? metadataClientDefaults.attempts,
    retryDelayMs: options.retryDelayMs ?? metadataClientDefaults.retryDelayMs,
  });
  try {
    const context: ImporterContext = {
      baseUrl,
      prefix: prefixKey,
      remote: name,
      client,
      maxAgeMs,
      report(detail) {
        if (detail.file !== undefined) reading.file = detail.file;
        if (detail.expected !== undefined) reading.expected = detail.expected;
        onProgress({ ...reading });
      },
    };
    for await (const entry of importer.read(context)) {
      const key = catalogKey(entry.path);
      if (!key.startsWith(prefixKey)) throw new LazyContentError('INTERNAL', `importer "${importer.type}" yielded ${JSON.stringify(key)}, outside the prefix "${prefixKey}"`);
      entries.set(key, { ...entry, remote: name });
      if (++reading.found % PROGRESS_EVERY === 0) onProgress({ ...reading });
    }
  } finally {
    await client.close();
  }
  onProgress({ ...reading });

  if (!current) await catalog.addRemote({ ...patch, name });
  // Only a real change: an edited remote gets new upstream connections in the streamer.
  else if (settingsOf(remote) !== settingsOf(current)) await catalog.updateRemote(name, patch);

  const before = new Map((await catalog.entriesUnder(name, prefixKey)).map((e) => [e.path, e]));
  let added = 0;
  let updated = 0;
  const stale: string[] = [];
  for (const [key, entry] of entries) {
    const old = before.get(key);
    if (!old) added++;
    else if (!sameEntry(old, entry)) {
      updated++;
      if (contentChanged(old, entry)) stale.push(key);
    }
  }
  const gone = [...before.keys()].filter((key) => !entries.has(key));

  // A copy saved or cached from the old bytes would be served instead of the new ones: dropped, so that the
  // policy (or the next request) fetches the file again.
  for (const key of stale) {
    await lc.store.delete(key);
    if (lc.fills.cache.lookup(key)) await lc.fills.cache.delete(key);
    lc.invalidate(key);
    if (before.get(key)?.savedAt) await catalog.markSaved(key, null);
  }

  onProgress({ phase: 'writing', entries: entries.size });
  const progress = await lc.importEntries(entries.values(), {
    onProgress: (p) => {
      if (p.toDownload > 0) onProgress({ phase: 'downloading', ...p });
    },
  });
  const removed = gone.length > 0 ? await catalog.removeEntries(gone, name) : 0;
  return { added, updated, unchanged: entries.size - added - updated, removed, total: entries.size, progress };
}
