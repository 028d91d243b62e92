import { randomBytes } from 'node:crypto';
import { createWriteStream, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContentStore, OpenedFile, PutOptions, PutSource, StoredFileInfo } from './content-store.js';

/**
 * Reserved folder at the store's root that holds files being written. Being inside the root keeps it on the
 * same filesystem, so the final `rename` is atomic; being one folder makes a crash's leftovers easy to sweep.
 * No key may name it.
 */
export const TEMP_DIR = '.lazy-content-tmp';

const READ_CHUNK = 256 * 1024;

function infoOf(st: Stats): StoredFileInfo {
  return { size: st.size, mtimeMs: st.mtimeMs, version: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` };
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'ENAMETOOLONG';
}

class FsOpenedFile implements OpenedFile {
  constructor(
    private readonly handle: FileHandle,
    readonly info: StoredFileInfo,
  ) {}

  slice(start: number, end: number): Readable {
    return this.handle.createReadStream({ start, end, autoClose: false, highWaterMark: READ_CHUNK });
  }

  readAll(): Promise<Buffer> {
    return this.handle.readFile();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** A `ContentStore` on a local folder. Files whose real path lies outside the folder (symlinks) are refused. */
export class FsContentStore implements ContentStore {
  readonly root: string;
  private realRoot: Promise<string> | undefined;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  private rootReal(): Promise<string> {
    this.realRoot ??= fsp.mkdir(this.root, { recursive: true }).then(() => fsp.realpath(this.root));
    // A failed mkdir is not remembered: the next call tries again (the disk may come back).
    this.realRoot.catch(() => (this.realRoot = undefined));
    return this.realRoot;
  }

  private fullPath(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').some((s) => s === '..' || s === '.' || s === '')) {
      throw new TypeError(`not a normalised store key: ${JSON.stringify(key)}`);
    }
    return path.join(this.root, key);
  }

  /** Real path of `key` if it is inside the root and not the temp folder; null otherwise. */
  private async resolveInside(key: string): Promise<string | null> {
    if (key === TEMP_DIR || key.startsWith(`${TEMP_DIR}/`)) return null;
    const full = this.fullPath(key);
    const root = await this.rootReal();
    let real: string;
    try {
      real = await fsp.realpath(full);
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    return real.startsWith(root + path.sep) ? real : null;
  }

  async stat(key: string): Promise<StoredFileInfo | null> {
    const real = await this.resolveInside(key);
    if (real === null) return null;
    try {
      const st = await fsp.stat(real);
      return st.isFile() ? infoOf(st) : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async open(key: string): Promise<OpenedFile | null> {
    const real = await this.resolveInside(key);
    if (real === null) return null;
    let handle: FileHandle;
    try {
      handle = await fsp.open(real, 'r');
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'EISDIR') return null;
      throw err;
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        await handle.close();
        return null;
      }
      return new FsOpenedFile(handle, infoOf(st));
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  async put(key: string, source: PutSource, options: PutOptions = {}): Promise<StoredFileInfo> {
    const full = this.fullPath(key);
    if (key === TEMP_DIR || key.startsWith(`${TEMP_DIR}/`)) throw new TypeError(`reserved store key: ${key}`);
    const root = await this.rootReal();
    const tmpDir = path.join(root, TEMP_DIR);
    await fsp.mkdir(tmpDir, { recursive: true });
    const tmp = path.join(tmpDir, `${randomBytes(12).toString('hex')}.part`);
    try {
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
      const input = Buffer.isBuffer(source) || source instanceof Uint8Array ? Readable.from([source]) : source;
      await pipeline(input, out);
      const handle = await fsp.open(tmp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (options.mtimeMs !== undefined) {
        // utimes takes floating-point seconds: aim at the middle of the millisecond, so that the time read
        // back floors to the same millisecond (ETags are made from it).
        const seconds = (Math.floor(options.mtimeMs) + 0.5) / 1000;
        await fsp.utimes(tmp, Date.now() / 1000, seconds);
      }
      await fsp.mkdir(path.dirname(full), { recursive: true });
      await fsp.rename(tmp, full);
      await syncDir(path.dirname(full));
      return infoOf(await fsp.stat(full));
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  }

  async delete(key: string): Promise<boolean> {
    const full = this.fullPath(key);
    try {
      await fsp.unlink(full);
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  /** Removes files left in the temp folder by a crash, older than `olderThanMs` (default: one hour). */
  async sweepTemporaryFiles(olderThanMs = 3_600_000): Promise<number> {
    const dir = path.join(await this.rootReal(), TEMP_DIR);
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch (err) {
      if (isMissing(err)) return 0;
      throw err;
    }
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const name of names) {
      const file = path.join(dir, name);
      const st = await fsp.stat(file).catch(() => null);
      if (st && st.mtimeMs < cutoff) {
        await fsp.rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }
}

/** fsync a directory so that a rename in it survives a power loss. */
async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic there.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL' && (err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
  } finally {
    await handle.close();
  }
}
