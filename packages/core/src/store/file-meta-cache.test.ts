import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileMetaCache } from './file-meta-cache.js';
import { FsContentStore } from './fs-store.js';

let dir: string;
let store: FsContentStore;

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-meta-'));
  store = new FsContentStore(path.join(dir, 'root'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await fsp.rm(dir, { recursive: true, force: true });
});

function cache(ttlMs = 1000): FileMetaCache {
  return new FileMetaCache(store, { ttlMs, maxEntries: 100, memoryBytes: 1024 * 1024, memoryFileBytes: 64 * 1024 });
}

describe('FileMetaCache: absent files', () => {
  it('remembers that a file is absent for ttlMs: a burst of requests costs one stat', async () => {
    const meta = cache();
    const stat = vi.spyOn(store, 'stat');
    const now = Date.now();
    expect(await Promise.all(Array.from({ length: 20 }, () => meta.get('lazy.bin', now)))).toEqual(Array(20).fill(null));
    expect(await meta.get('lazy.bin', now + 999)).toBeNull();
    expect(stat).toHaveBeenCalledTimes(1);
    // Past ttlMs it looks again, and finds a file that appeared behind its back.
    await store.put('lazy.bin', Buffer.from('now here'));
    expect((await meta.get('lazy.bin', now + 60_000))?.info.size).toBe(8);
    expect(stat).toHaveBeenCalledTimes(2);
  });

  it('forgets the absence at once on invalidate (a save through this process)', async () => {
    const meta = cache();
    expect(await meta.get('saved.bin')).toBeNull();
    await store.put('saved.bin', Buffer.from('abc'));
    meta.invalidate('saved.bin');
    expect((await meta.get('saved.bin'))?.body?.toString()).toBe('abc');
  });

  it('does not record an absence seen by a stat that began before an invalidation', async () => {
    const meta = cache();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const real = store.stat.bind(store);
    vi.spyOn(store, 'stat').mockImplementationOnce(async (key) => {
      const answer = await real(key);
      await gate;
      return answer;
    });
    const early = meta.get('racing.bin');
    // The file is saved and announced while the first stat (which saw nothing) is still on its way.
    await store.put('racing.bin', Buffer.from('xyz'));
    meta.invalidate('racing.bin');
    release();
    expect(await early).toBeNull();
    expect((await meta.get('racing.bin'))?.info.size).toBe(3);
  });

  it('with ttlMs 0 asks the store every time', async () => {
    const meta = cache(0);
    const stat = vi.spyOn(store, 'stat');
    await meta.get('none.bin');
    await meta.get('none.bin');
    expect(stat).toHaveBeenCalledTimes(2);
  });
});
