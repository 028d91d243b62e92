import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import Keyv from 'keyv';
import type { DigestAlgorithm } from '../catalog/types.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ContentStore, OpenedFile, StoredFileInfo } from '../store/content-store.js';

/** What the cache's index (a Keyv) holds for one cached file. Plain JSON, so any Keyv store keeps it as is. */
export interface CacheRecord {
  /** The file key (normalised request path). */
  key: string;
  size: number;
  /** The algorithm of `digest`: the catalog's, or sha256 when the catalog had none. */
  digestAlgorithm: DigestAlgorithm;
  /** Lower-case hex digest of the cached bytes, computed while they were downloaded. */
  digest: string;
  /** The catalog's content type, else the upstream's, else null. */
  contentType: string | null;
  /** When the download completed, in ms since the epoch. */
  completedAt: number;
}

export interface DiskCacheOptions {
  /**
   * The cache folder; created when missing. Several caches on one host may share it (cluster workers, a
   * separate save worker): `init()` removes only the temp files of processes that are gone, and leaves alone
   * the files that another open cache lists as its own.
   */
  dir: string;
  /** Bytes of cached and in-progress files above which least recently used files are evicted. @default 10737418240 (10 GiB) */
  maxBytes?: number;
  /** The index of cached files. Keyed by file key; give each cache folder its own namespace. @default new Keyv() (in memory) */
  index?: Keyv<CacheRecord>;
  /** @default silentLogger */
  logger?: Logger;
  /**
   * @internal How many more keys than twice its entries this cache's registration may list before it is
   * written anew. @default 10000
   */
  registrationSlack?: number;
}

export const diskCacheDefaults = {
  maxBytes: 10 * 1024 * 1024 * 1024,
} satisfies Required<Pick<DiskCacheOptions, 'maxBytes'>>;

export interface DiskCacheEvents {
  /** A file was dropped to make room. */
  'cache:evicted': [event: { key: string; size: number }];
  /** Room could not be made because every cached file is in use; the cache is over its limit for now. */
  'cache:over-limit': [event: { usedBytes: number; maxBytes: number }];
}

/** What `init()` found and did. */
export interface CacheInitReport {
  /** Temp files left by a crash (of this or another process that is gone), removed. */
  temporaryFilesRemoved: number;
  /** Temp files of other processes that are still running (their downloads in progress), left alone. */
  temporaryFilesKept: number;
  /**
   * Other open caches on this folder (registered under `procs/`): of other running processes, or other
   * instances in this process.
   */
  otherCaches: number;
  /** Cached files whose index record matched, kept. */
  filesKept: number;
  /** Cached files without a matching index record, removed: nothing vouches for their bytes. */
  filesRemoved: number;
  /**
   * Cached files without a matching record here, left alone because another open cache on the folder put them
   * there (its index vouches for them). This cache does not serve them.
   */
  filesLeft: number;
}

/** Folder of finished files, laid out like the store: `files/<key>`. */
const FILES_DIR = 'files';
/** Folder of files being downloaded. A sibling of `files/`, so no key can name it, and on the same filesystem. */
const TMP_DIR = 'tmp';
/**
 * Folder where each cache using the folder registers (`<pid>-<id>@<host>`) from `init()` to `close()`; the
 * registration lists, after its first line, the keys the cache put in `files/`.
 */
const PROCS_DIR = 'procs';

/** How many more keys than twice its entries a registration may list before it is written anew. */
const VOUCH_SLACK = 10_000;

/** Caches of this process that are initialised and not closed, by id (their registrations in `procs/`). */
const liveCaches = new Set<string>();
/** Temp files of this process's caches that are not committed or discarded yet, by path. */
const liveTemps = new Set<string>();

/** The pid a temp file was named with (`<pid>-<random>.part`), or null for a name not of that form. */
function pidOfTemp(name: string): number | null {
  const m = /^(\d+)-[0-9a-f]+\.part$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** Whether the cache `id` of process `pid` (of this host) is open: in this process, by the registry; else if the process runs. */
function cacheIsOpen(pid: number, id: string): boolean {
  return pid === process.pid ? liveCaches.has(id) : isRunning(pid);
}

/** Whether a process with this pid runs on this host (EPERM: it does, under another user). */
function isRunning(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Entry {
  record: CacheRecord;
  /** Inode of the file, so that removing an old file never removes a newer one renamed onto the same path. */
  ino: number;
  /** Open files and fills still reading this file; eviction skips an entry while this is above 0. */
  refs: number;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function infoOf(st: Stats): StoredFileInfo {
  return { size: st.size, mtimeMs: st.mtimeMs, version: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` };
}

/** Throws a TypeError unless `key` is a normalised file key (as `normalizePath` makes them). */
export function checkKey(key: string): void {
  if (key === '' || key.startsWith('/') || key.includes('\0') || key.split('/').some((s) => s === '..' || s === '.' || s === '')) {
    throw new TypeError(`not a normalised file key: ${JSON.stringify(key)}`);
  }
}

/** A cached file held open: the same read interface as a saved file, plus positional reads and its record. */
export class CachedFile implements OpenedFile {
  private closed = false;

  constructor(
    private readonly handle: FileHandle,
    readonly info: StoredFileInfo,
    readonly record: CacheRecord,
    private readonly onClose: () => void,
  ) {}

  slice(start: number, end: number): Readable {
    return this.handle.createReadStream({ start, end, autoClose: false, highWaterMark: 512 * 1024 });
  }

  readAll(): Promise<Buffer> {
    return this.handle.readFile();
  }

  /** Reads into `into` at `position`; resolves with the byte count. */
  async read(into: Buffer, position: number): Promise<number> {
    return (await this.handle.read(into, 0, into.length, position)).bytesRead;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    await this.handle.close();
  }
}

/** A file being downloaded into the cache's temp folder. */
export class TempFile {
  /** Bytes announced for this file (its expected size), counted against the cache's limit. */
  reservedBytes = 0;
  settled = false;

  constructor(
    readonly path: string,
    /** Opened read-write: the fill writes through it and its readers read through it. */
    readonly handle: FileHandle,
  ) {}
}

/**
 * The disk cache of fills: finished downloads kept under `dir/files/<key>` until the save worker has saved them
 * (`delete`) or room is needed (least recently used first). Files being read (open `CachedFile`s, fills whose
 * readers are still on the file) are never evicted. Downloads are written under `dir/tmp/` and renamed into
 * place, so a file under `files/` is always whole and verified.
 */
export class DiskCache extends EventEmitter<DiskCacheEvents> implements Pick<ContentStore, 'stat' | 'open' | 'delete'> {
  readonly dir: string;
  readonly maxBytes: number;
  readonly index: Keyv<CacheRecord>;
  private readonly logger: Logger;
  /** Cached files, least recently used first (a Map keeps insertion order; a use moves an entry to the end). */
  private readonly entries = new Map<string, Entry>();
  private readonly temps = new Set<TempFile>();
  private cachedBytes = 0;
  /** Per-key chain of file operations, so that an unlink of an evicted file never lands on its successor. */
  private readonly keyOps = new Map<string, Promise<unknown>>();
  private initRun: Promise<CacheInitReport> | undefined;
  /** Tells this cache's registration in the folder from other caches of the same process. */
  private readonly id = randomBytes(6).toString('hex');
  /** Keys listed in this cache's registration (with repeats), and the write in progress. */
  private vouchedLines = 0;
  private readonly registrationSlack: number;
  private vouching: Promise<void> = Promise.resolve();

  constructor(options: DiskCacheOptions) {
    super();
    this.dir = path.resolve(options.dir);
    this.maxBytes = options.maxBytes ?? diskCacheDefaults.maxBytes;
    this.index = options.index ?? new Keyv<CacheRecord>();
    this.logger = options.logger ?? silentLogger;
    this.registrationSlack = options.registrationSlack ?? VOUCH_SLACK;
  }

  private get filesDir(): string {
    return path.join(this.dir, FILES_DIR);
  }

  private get tmpDir(): string {
    return path.join(this.dir, TMP_DIR);
  }

  /** This cache's registration in the folder: `<pid>-<id>@<host>`. */
  private get presenceFile(): string {
    return path.join(this.dir, PROCS_DIR, `${process.pid}-${this.id}@${os.hostname()}`);
  }

  /**
   * Registers this cache as a user of the folder and counts the others that are still open: caches of other
   * running processes, and other open caches of this process. Registrations of processes of this host that
   * are gone (a crash), and of this process's caches that are not open, are removed; those of other hosts (a
   * folder shared over a network filesystem) count as open, since their pids cannot be checked from here.
   */
  private async registerPresence(): Promise<{ others: number; vouched: Set<string> }> {
    const procs = path.join(this.dir, PROCS_DIR);
    await fsp.mkdir(procs, { recursive: true });
    await fsp.writeFile(this.presenceFile, `${new Date().toISOString()}\n`);
    this.vouchedLines = 0;
    liveCaches.add(this.id);
    const host = os.hostname();
    let others = 0;
    const vouched = new Set<string>();
    for (const name of await fsp.readdir(procs)) {
      const left = /^\.(\d+)-([0-9a-f]+)\.tmp$/.exec(name);
      if (left) {
        // A rewrite of a registration that a crash interrupted.
        if (!cacheIsOpen(Number(left[1]), left[2]!)) await fsp.rm(path.join(procs, name), { force: true });
        continue;
      }
      const m = /^(\d+)-([0-9a-f]+)@(.+)$/.exec(name);
      if (!m) continue;
      const [, pidText, id, nameHost] = m;
      const pid = Number(pidText);
      if (pid === process.pid && id === this.id) continue;
      if (nameHost === host && !cacheIsOpen(pid, id!)) {
        await fsp.rm(path.join(procs, name), { force: true });
        continue;
      }
      others++;
      // A registration lists, after its first line, the keys its cache put in the folder.
      const text = await fsp.readFile(path.join(procs, name), 'utf8').catch(() => '');
      for (const line of text.split('\n').slice(1)) if (line) vouched.add(line);
    }
    return { others, vouched };
  }

  /**
   * Lists `keys` in this cache's registration: another cache starting on the folder leaves these files alone.
   * The list only grows by appends; once it is much longer than the cache (evicted and saved files stay
   * listed), it is written anew from the cache's entries.
   */
  private vouchFor(keys: string[]): Promise<void> {
    if (keys.length === 0) return Promise.resolve();
    const write = async (): Promise<void> => {
      this.vouchedLines += keys.length;
      if (this.vouchedLines > 2 * this.entries.size + this.registrationSlack) {
        const listed = [...new Set([...this.entries.keys(), ...keys])];
        // A dot name: never read as a registration, and removed by the next start-up if it is left behind.
        const next = path.join(this.dir, PROCS_DIR, `.${process.pid}-${this.id}.tmp`);
        await fsp.writeFile(next, `${new Date().toISOString()}\n${listed.map((k) => `${k}\n`).join('')}`);
        await fsp.rename(next, this.presenceFile);
        this.vouchedLines = listed.length;
        return;
      }
      // 'a' also recreates a registration that was removed meanwhile.
      await fsp.appendFile(this.presenceFile, keys.map((k) => `${k}\n`).join(''));
    };
    // One write at a time: a rewrite must not lose an append made while it ran.
    const run = this.vouching.then(write, write);
    this.vouching = run.catch(() => undefined);
    return run;
  }

  /** Bytes of cached files plus bytes reserved by downloads in progress. */
  get usedBytes(): number {
    let reserved = 0;
    for (const temp of this.temps) reserved += temp.reservedBytes;
    return this.cachedBytes + reserved;
  }

  /** Number of cached files. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Prepares the folder: registers this cache in it; removes the temp files of processes that are gone (a
   * crash's leftovers), keeping those of other open caches; keeps cached files whose index record has the same
   * size; removes the others unless another open cache put them there (its registration lists them); then
   * evicts down to the limit. Call once before use; later calls return the first one's result, unless it
   * failed (the disk may come back): then the next call tries again.
   */
  init(): Promise<CacheInitReport> {
    if (!this.initRun) {
      const run = this.runInit();
      this.initRun = run;
      run.catch(() => {
        if (this.initRun === run) this.initRun = undefined;
      });
    }
    return this.initRun;
  }

  private async runInit(): Promise<CacheInitReport> {
    await fsp.mkdir(this.filesDir, { recursive: true });
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const { others: otherCaches, vouched } = await this.registerPresence();
    let temporaryFilesRemoved = 0;
    let temporaryFilesKept = 0;
    for (const name of await fsp.readdir(this.tmpDir)) {
      // Temp files are named after the pid of their process: another running process's download stays.
      const pid = pidOfTemp(name);
      const ownedElsewhere = pid === process.pid ? liveTemps.has(path.join(this.tmpDir, name)) : pid !== null && isRunning(pid);
      if (ownedElsewhere) {
        temporaryFilesKept++;
        continue;
      }
      await fsp.rm(path.join(this.tmpDir, name), { recursive: true, force: true });
      temporaryFilesRemoved++;
    }
    const found: { key: string; st: Stats }[] = [];
    await this.walk(this.filesDir, '', found);
    let filesKept = 0;
    let filesRemoved = 0;
    let filesLeft = 0;
    const adopted: { record: CacheRecord; st: Stats }[] = [];
    for (const { key, st } of found) {
      const record = await this.index.get(key);
      if (record && record.key === key && record.size === st.size) {
        adopted.push({ record, st });
        filesKept++;
      } else if (vouched.has(key)) {
        // Another open cache put it here and its index (in its memory) vouches for it: not ours to remove.
        filesLeft++;
      } else {
        await fsp.rm(path.join(this.filesDir, key), { force: true });
        if (record) await this.index.delete(key);
        filesRemoved++;
      }
    }
    await this.vouchFor(adopted.map(({ record }) => record.key));
    // The rename into place is the last use we know of.
    adopted.sort((a, b) => a.st.mtimeMs - b.st.mtimeMs);
    for (const { record, st } of adopted) {
      this.entries.set(record.key, { record, ino: st.ino, refs: 0 });
      this.cachedBytes += record.size;
    }
    this.evict();
    const report = { temporaryFilesRemoved, temporaryFilesKept, otherCaches, filesKept, filesRemoved, filesLeft };
    this.logger.info({ dir: this.dir, ...report }, 'cache ready');
    return report;
  }

  private async walk(dir: string, prefix: string, out: { key: string; st: Stats }[]): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const name of names) {
      const full = path.join(dir, name);
      const key = prefix === '' ? name : `${prefix}/${name}`;
      let st: Stats;
      try {
        st = await fsp.lstat(full);
      } catch (err) {
        // Removed since the folder was listed (a save dropped it, another process evicted it): nothing to do.
        if (isMissing(err)) continue;
        throw err;
      }
      if (st.isDirectory()) await this.walk(full, key, out);
      else if (st.isFile()) out.push({ key, st });
      else await fsp.rm(full, { force: true });
    }
  }

  private async whenReady(): Promise<void> {
    if (!this.initRun) throw new Error('DiskCache.init() must be called before use');
    await this.initRun;
  }

  /** The record of a cached file, or null. Does not count as a use. */
  lookup(key: string): CacheRecord | null {
    return this.entries.get(key)?.record ?? null;
  }

  /** Info of a cached file, or null. */
  async stat(key: string): Promise<StoredFileInfo | null> {
    checkKey(key);
    if (!this.entries.has(key)) return null;
    try {
      const st = await fsp.stat(path.join(this.filesDir, key));
      return st.isFile() ? infoOf(st) : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /** Opens a cached file, or null. Counts as a use; the file cannot be evicted until `close()`. */
  async open(key: string): Promise<CachedFile | null> {
    checkKey(key);
    const entry = this.entries.get(key);
    if (!entry) return null;
    // Taken before any await, so an eviction running meanwhile skips this entry.
    entry.refs++;
    this.touch(key, entry);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      entry.refs--;
      if (entry.refs === 0) this.evict();
    };
    let handle: FileHandle | undefined;
    try {
      handle = await fsp.open(path.join(this.filesDir, key), 'r');
      const st = await handle.stat();
      if (!st.isFile() || st.size !== entry.record.size) throw Object.assign(new Error('cache file changed'), { code: 'ENOENT' });
      return new CachedFile(handle, infoOf(st), entry.record, release);
    } catch (err) {
      await handle?.close().catch(() => undefined);
      release();
      if (isMissing(err)) {
        // Deleted behind our back (or by `delete` meanwhile): forget it rather than fail every request.
        if (this.entries.get(key) === entry) this.forget(key, entry);
        return null;
      }
      throw err;
    }
  }

  /**
   * Drops a cached file (after it was saved). Readers that have it open keep reading it: the bytes stay until
   * they close. False when there was none.
   */
  async delete(key: string): Promise<boolean> {
    checkKey(key);
    await this.whenReady();
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.forget(key, entry);
    await this.serial(key, () => this.removeFile(key, entry.ino));
    const current = await this.index.get(key);
    if (current && current.completedAt === entry.record.completedAt) await this.index.delete(key);
    return true;
  }

  /** A new temp file for a download, opened read-write. */
  async createTemp(): Promise<TempFile> {
    await this.whenReady();
    const file = path.join(this.tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}.part`);
    const handle = await fsp.open(file, 'wx+', 0o644);
    const temp = new TempFile(file, handle);
    this.temps.add(temp);
    liveTemps.add(file);
    return temp;
  }

  /** Counts `bytes` (a download's expected size) against the limit, evicting to make room. */
  reserve(temp: TempFile, bytes: number): void {
    temp.reservedBytes = bytes;
    this.evict();
  }

  /** Removes a temp file that will not be committed (failed download). The handle is closed by its owner. */
  async discard(temp: TempFile): Promise<void> {
    if (temp.settled) return;
    temp.settled = true;
    this.temps.delete(temp);
    liveTemps.delete(temp.path);
    await fsp.rm(temp.path, { force: true });
  }

  /**
   * Moves a finished, verified temp file into the cache and writes its index record. Returns the release of a
   * hold on the new entry (the fill's readers are still on it); eviction skips it until released.
   */
  async commit(temp: TempFile, record: CacheRecord): Promise<() => void> {
    if (temp.settled) throw new Error('temp file already settled');
    temp.settled = true;
    this.temps.delete(temp);
    liveTemps.delete(temp.path);
    const { key } = record;
    const target = path.join(this.filesDir, key);
    let ino: number;
    try {
      checkKey(key);
      await temp.handle.sync();
      ino = (await temp.handle.stat()).ino;
      // Listed before it appears in the folder, so that a cache starting meanwhile never takes it for an orphan.
      await this.vouchFor([key]);
      await this.serial(key, async () => {
        for (let attempt = 0; ; attempt++) {
          await fsp.mkdir(path.dirname(target), { recursive: true });
          try {
            await fsp.rename(temp.path, target);
            return;
          } catch (err) {
            // A removal of an emptied parent folder (another key) ran between mkdir and rename: again.
            if (!isMissing(err) || attempt >= 2) throw err;
          }
        }
      });
    } catch (err) {
      await fsp.rm(temp.path, { force: true }).catch(() => undefined);
      throw err;
    }
    try {
      await this.index.set(key, record);
    } catch (err) {
      await this.serial(key, () => this.removeFile(key, ino)).catch(() => undefined);
      throw err;
    }
    const previous = this.entries.get(key);
    if (previous) this.forget(key, previous);
    const entry: Entry = { record, ino, refs: 1 };
    this.entries.set(key, entry);
    this.cachedBytes += record.size;
    this.evict();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.refs--;
      if (entry.refs === 0) this.evict();
    };
  }

  /** Resolves once every file removal and rename started so far (evictions run in the background) is done. */
  async idle(): Promise<void> {
    while (this.keyOps.size > 0) await Promise.allSettled([...this.keyOps.values()]);
  }

  /** Forgets everything in memory and unregisters this cache from the folder; files stay on disk for the next `init`. */
  async close(): Promise<void> {
    await this.idle();
    this.entries.clear();
    this.cachedBytes = 0;
    const initialised = await this.initRun?.then(
      () => true,
      () => false,
    );
    liveCaches.delete(this.id);
    // Downloads this cache never settled are a closed cache's leftovers: the next start may remove them.
    for (const temp of this.temps) liveTemps.delete(temp.path);
    if (initialised) await fsp.rm(this.presenceFile, { force: true });
  }

  private touch(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  private forget(key: string, entry: Entry): void {
    if (this.entries.get(key) !== entry) return;
    this.entries.delete(key);
    this.cachedBytes -= entry.record.size;
  }

  /** Evicts least recently used files that nobody is reading until the cache fits its limit. */
  private evict(): void {
    let over = this.usedBytes - this.maxBytes;
    if (over <= 0) return;
    for (const [key, entry] of this.entries) {
      if (over <= 0) break;
      if (entry.refs > 0) continue;
      this.forget(key, entry);
      over -= entry.record.size;
      this.emit('cache:evicted', { key, size: entry.record.size });
      this.serial(key, async () => {
        await this.removeFile(key, entry.ino);
        // The key may have been filled again since: only remove a record that still describes this file.
        const current = await this.index.get(key);
        if (current && current.completedAt === entry.record.completedAt) await this.index.delete(key);
      }).catch((err: unknown) => this.logger.warn({ key, err: String(err) }, 'cache eviction failed'));
    }
    if (over > 0) this.emit('cache:over-limit', { usedBytes: this.usedBytes, maxBytes: this.maxBytes });
  }

  /** Removes the file of `key` if it is still the inode `ino` (a newer file renamed onto the path stays). */
  private async removeFile(key: string, ino: number): Promise<void> {
    const file = path.join(this.filesDir, key);
    try {
      if ((await fsp.lstat(file)).ino !== ino) return;
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    await fsp.rm(file, { force: true });
    // Empty parent folders go too, so that a cache that churns does not grow a tree of empty folders.
    for (let dir = path.dirname(file); dir.startsWith(this.filesDir + path.sep); dir = path.dirname(dir)) {
      try {
        await fsp.rmdir(dir);
      } catch {
        break;
      }
    }
  }

  private serial<T>(key: string, op: () => Promise<T>): Promise<T> {
    const previous = this.keyOps.get(key) ?? Promise.resolve();
    const next = previous.then(op, op);
    const settled = next.catch(() => undefined);
    this.keyOps.set(key, settled);
    settled.then(() => {
      if (this.keyOps.get(key) === settled) this.keyOps.delete(key);
    }).catch(() => undefined);
    return next;
  }
}
