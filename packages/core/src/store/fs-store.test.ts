import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsContentStore, TEMP_DIR } from './fs-store.js';

let dir: string;
let store: FsContentStore;

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-store-'));
  store = new FsContentStore(path.join(dir, 'root'));
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function readSlice(key: string, start: number, end: number): Promise<string> {
  const file = await store.open(key);
  if (!file) throw new Error('missing');
  try {
    const chunks: Buffer[] = [];
    for await (const c of file.slice(start, end)) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString();
  } finally {
    await file.close();
  }
}

describe('FsContentStore', () => {
  it('puts a buffer and a stream, creating folders, and reads ranges back', async () => {
    const info = await store.put('a/b/c.txt', Buffer.from('hello world'));
    expect(info.size).toBe(11);
    await store.put('d.txt', Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
    expect(await readSlice('a/b/c.txt', 6, 10)).toBe('world');
    expect(await readSlice('d.txt', 0, 3)).toBe('abcd');
    expect((await store.stat('a/b/c.txt'))?.size).toBe(11);
  });

  it('replaces atomically: an open reader keeps the old version, the new one has a new version', async () => {
    await store.put('f', Buffer.from('old!'));
    const before = await store.open('f');
    const info = await store.put('f', Buffer.from('newer'));
    expect(info.version).not.toBe(before?.info.version);
    expect((await before?.readAll())?.toString()).toBe('old!');
    await before?.close();
    expect(await readSlice('f', 0, 4)).toBe('newer');
  });

  it('leaves no file and no temp file when the source fails', async () => {
    async function* failing() {
      yield Buffer.from('partial');
      throw new Error('upstream cut');
    }
    await expect(store.put('x/broken', failing())).rejects.toThrow('upstream cut');
    expect(await store.stat('x/broken')).toBeNull();
    expect(await fsp.readdir(path.join(dir, 'root', TEMP_DIR))).toEqual([]);
  });

  it('answers null for missing files, folders and the temp folder', async () => {
    await store.put('dir/file', Buffer.from('x'));
    expect(await store.stat('nope')).toBeNull();
    expect(await store.stat('dir')).toBeNull();
    expect(await store.open('dir')).toBeNull();
    expect(await store.stat('dir/file/below')).toBeNull();
    await fsp.writeFile(path.join(dir, 'root', TEMP_DIR, 'leftover.part'), 'x');
    expect(await store.stat(`${TEMP_DIR}/leftover.part`)).toBeNull();
    await expect(store.put(`${TEMP_DIR}/x`, Buffer.from('x'))).rejects.toThrow(/reserved/);
  });

  it('refuses symlinks that point outside the root and follows those inside it', async () => {
    await fsp.writeFile(path.join(dir, 'secret'), 'secret');
    await store.put('inside', Buffer.from('inside'));
    await fsp.symlink(path.join(dir, 'secret'), path.join(dir, 'root', 'out-link'));
    await fsp.symlink(path.join(dir), path.join(dir, 'root', 'out-dir'));
    await fsp.symlink('inside', path.join(dir, 'root', 'in-link'));
    expect(await store.stat('out-link')).toBeNull();
    expect(await store.open('out-link')).toBeNull();
    expect(await store.stat('out-dir/secret')).toBeNull();
    expect(await readSlice('in-link', 0, 5)).toBe('inside');
  });

  it('refuses keys that are not normalised', async () => {
    await expect(store.stat('../x')).rejects.toThrow(TypeError);
    await expect(store.put('/abs', Buffer.from('x'))).rejects.toThrow(TypeError);
    await expect(store.delete('a//b')).rejects.toThrow(TypeError);
  });

  it('keeps a given modification time to the millisecond (so that ETags survive a save from the cache)', async () => {
    for (const mtimeMs of [1_764_513_895_123.25, 1_764_513_895_999.75, 1_000_000_000_000]) {
      const info = await store.put('timed', Buffer.from('x'), { mtimeMs });
      expect(Math.floor(info.mtimeMs)).toBe(Math.floor(mtimeMs));
    }
  });

  it('deletes', async () => {
    await store.put('gone', Buffer.from('x'));
    expect(await store.delete('gone')).toBe(true);
    expect(await store.delete('gone')).toBe(false);
    expect(await store.stat('gone')).toBeNull();
  });

  it('sweeps old temp files left by a crash, and keeps recent ones', async () => {
    await store.put('seed', Buffer.from('x'));
    const tmp = path.join(dir, 'root', TEMP_DIR);
    await fsp.writeFile(path.join(tmp, 'old.part'), 'x');
    await fsp.writeFile(path.join(tmp, 'new.part'), 'x');
    const past = new Date(Date.now() - 2 * 3_600_000);
    await fsp.utimes(path.join(tmp, 'old.part'), past, past);
    expect(await store.sweepTemporaryFiles()).toBe(1);
    expect(await fsp.readdir(tmp)).toEqual(['new.part']);
  });
});
