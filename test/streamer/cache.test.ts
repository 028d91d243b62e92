import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import Keyv from 'keyv';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CacheRecord, DiskCache } from '../../packages/core/src/cache/disk-cache.js';
import { FillEngine } from '../../packages/core/src/streamer/fill-engine.js';
import { type FaultServer, startFaultServer } from '../upstream/fault-server.js';
import { collect, digestOf, firstChunk, MiB, randomFile, sha256, source, until } from './helpers.js';
import { repoRoot } from '../fixtures/entitlement.js';

let dir: string;
let index: Keyv<CacheRecord>;
let cache: DiskCache;
const evicted: string[] = [];

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-cache-'));
  index = new Keyv<CacheRecord>();
  evicted.length = 0;
});
afterEach(async () => {
  await cache.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function openCache(maxBytes?: number): Promise<DiskCache> {
  cache = new DiskCache({ dir, index, ...(maxBytes === undefined ? {} : { maxBytes }) });
  cache.on('cache:evicted', ({ key }) => evicted.push(key));
  await cache.init();
  return cache;
}

/** A process that runs until killed. */
async function runningProcess(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await once(child, 'spawn');
  return child;
}

/** The pid of a process that has exited. */
async function exitedPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid!;
}

/** Puts `body` in the cache the way a fill does: temp file, then commit. */
async function put(key: string, body: Buffer): Promise<CacheRecord> {
  const { record, release } = await putHeld(key, body);
  release();
  return record;
}

/** Like `put`, but the file stays in use (as by the fill's readers) until `release()`. */
async function putHeld(key: string, body: Buffer): Promise<{ record: CacheRecord; release: () => void }> {
  const temp = await cache.createTemp();
  await temp.handle.write(body, 0, body.length, 0);
  const record: CacheRecord = {
    key,
    size: body.length,
    digestAlgorithm: 'sha256',
    digest: sha256(body),
    contentType: null,
    completedAt: Date.now(),
  };
  const release = await cache.commit(temp, record);
  await temp.handle.close();
  return { record, release };
}

describe('DiskCache', () => {
  it('opens cached files through the OpenedFile interface and stats them', async () => {
    await openCache();
    const body = randomFile(300_000);
    await put('a/b/file.rpm', body);
    expect((await cache.stat('a/b/file.rpm'))?.size).toBe(body.length);
    expect(await cache.stat('a/b/other.rpm')).toBeNull();
    const file = await cache.open('a/b/file.rpm');
    expect(file).not.toBeNull();
    expect(file!.info.size).toBe(body.length);
    expect(file!.record.digest).toBe(sha256(body));
    expect((await collect(file!.slice(1000, 1999))).equals(body.subarray(1000, 2000))).toBe(true);
    expect((await file!.readAll()).equals(body)).toBe(true);
    await file!.close();
    expect(() => cache.lookup('a/../b')).not.toThrow();
    await expect(cache.open('a/../b')).rejects.toThrow(TypeError);
  });

  it('evicts the least recently used files, skipping files in use', async () => {
    await openCache(3 * MiB);
    const body = randomFile(MiB);
    await put('a', body);
    await put('b', body);
    await put('c', body);
    // `a` is held open (a client is reading it) while b and c are used after it: a is the least recent.
    const held = await cache.open('a');
    await (await cache.open('b'))!.close();
    await (await cache.open('c'))!.close();

    await put('d', body);
    expect(evicted).toEqual(['b']);
    expect(cache.lookup('a')).not.toBeNull();
    expect(cache.lookup('b')).toBeNull();
    await cache.idle();
    expect(await index.get('b')).toBeUndefined();
    await expect(fsp.stat(path.join(dir, 'files', 'b'))).rejects.toThrow();

    // Released, `a` is the least recent again and goes first.
    await held!.close();
    await put('e', body);
    expect(evicted).toEqual(['b', 'a']);
    expect([...['c', 'd', 'e']].every((k) => cache.lookup(k) !== null)).toBe(true);
    expect(cache.usedBytes).toBe(3 * MiB);
  });

  it('goes over its limit rather than evict files in use, and reports it', async () => {
    await openCache(MiB);
    const over: number[] = [];
    cache.on('cache:over-limit', ({ usedBytes }) => over.push(usedBytes));
    const body = randomFile(MiB);
    await put('a', body);
    const held = await cache.open('a');
    const b = await putHeld('b', body);
    expect(evicted).toEqual([]);
    expect(over).toEqual([2 * MiB]);
    expect(cache.usedBytes).toBe(2 * MiB);
    // Once b is no longer in use it is the only candidate: a is still held.
    b.release();
    expect(evicted).toEqual(['b']);
    await held!.close();
    expect(cache.lookup('a')).not.toBeNull();
  });

  it('removes crash leftovers at init, keeps indexed files, drops unindexed ones', async () => {
    const gone = await exitedPid();
    await fsp.mkdir(path.join(dir, 'tmp'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'tmp', `${gone}-0123456789abcdef.part`), 'half a download');
    await fsp.writeFile(path.join(dir, 'tmp', 'stray'), 'junk');
    const kept = randomFile(1000);
    await fsp.mkdir(path.join(dir, 'files', 'repo'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'files', 'repo', 'kept.bin'), kept);
    await fsp.writeFile(path.join(dir, 'files', 'repo', 'unindexed.bin'), 'nobody vouches for me');
    await fsp.writeFile(path.join(dir, 'files', 'repo', 'wrong-size.bin'), 'abc');
    await index.set('repo/kept.bin', { key: 'repo/kept.bin', size: 1000, digestAlgorithm: 'sha256', digest: sha256(kept), contentType: null, completedAt: 1 });
    await index.set('repo/wrong-size.bin', { key: 'repo/wrong-size.bin', size: 4, digestAlgorithm: 'sha256', digest: 'x', contentType: null, completedAt: 1 });

    await openCache();
    expect(await cache.init()).toEqual({
      temporaryFilesRemoved: 2,
      temporaryFilesKept: 0,
      otherCaches: 0,
      filesKept: 1,
      filesRemoved: 2,
      filesLeft: 0,
    });
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    expect(await fsp.readdir(path.join(dir, 'files', 'repo'))).toEqual(['kept.bin']);
    expect(cache.lookup('repo/kept.bin')?.digest).toBe(sha256(kept));
    expect(await index.get('repo/wrong-size.bin')).toBeUndefined();
  });

  it('shares the folder with another running process: its downloads and files stay, a gone one is cleaned up', async () => {
    const other = await runningProcess();
    try {
      const gone = await exitedPid();
      const host = os.hostname();
      await fsp.mkdir(path.join(dir, 'tmp'), { recursive: true });
      await fsp.mkdir(path.join(dir, 'procs'), { recursive: true });
      await fsp.mkdir(path.join(dir, 'files', 'repo'), { recursive: true });
      // The other process registered and is downloading; a crashed one left its registration and a temp file.
      // Its registration lists the file it cached.
      await fsp.writeFile(path.join(dir, 'procs', `${other.pid}-0a1b2c@${host}`), '2026-11-30T00:00:00.000Z\nrepo/theirs.bin\n');
      await fsp.writeFile(path.join(dir, 'procs', `${gone}-0a1b2c@${host}`), '');
      await fsp.writeFile(path.join(dir, 'tmp', `${other.pid}-00112233aabbccdd.part`), 'its download in progress');
      await fsp.writeFile(path.join(dir, 'tmp', `${gone}-00112233aabbccdd.part`), 'a crash leftover');
      // A file the other process cached (its index is in its memory, not in ours), and one that nobody
      // vouches for (left by a process that is gone).
      await fsp.writeFile(path.join(dir, 'files', 'repo', 'theirs.bin'), 'cached by the other process');
      await fsp.writeFile(path.join(dir, 'files', 'repo', 'orphan.bin'), 'left by a crashed process');

      await openCache();
      expect(await cache.init()).toEqual({
        temporaryFilesRemoved: 1,
        temporaryFilesKept: 1,
        otherCaches: 1,
        filesKept: 0,
        filesRemoved: 1,
        filesLeft: 1,
      });
      expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([`${other.pid}-00112233aabbccdd.part`]);
      expect(await fsp.readdir(path.join(dir, 'files', 'repo'))).toEqual(['theirs.bin']);
      // Not ours to serve: nothing in our index vouches for it.
      expect(cache.lookup('repo/theirs.bin')).toBeNull();
      const registered = await fsp.readdir(path.join(dir, 'procs'));
      expect(registered).toHaveLength(2);
      expect(registered).toContain(`${other.pid}-0a1b2c@${host}`);
      expect(registered.find((n) => n !== `${other.pid}-0a1b2c@${host}`)).toMatch(new RegExp(`^${process.pid}-[0-9a-f]+@`));

      // Our own downloads are named after our pid and are ours to clean up.
      const ours = await cache.createTemp();
      await ours.handle.close();
      expect(ours.path).toMatch(new RegExp(`tmp/${process.pid}-[0-9a-f]+\\.part$`));
      await cache.close();
      expect(await fsp.readdir(path.join(dir, 'procs'))).toEqual([`${other.pid}-0a1b2c@${host}`]);
    } finally {
      other.kill();
      await once(other, 'exit');
    }
    // Once the other process is gone, the next start cleans up after it like after a crash.
    cache = new DiskCache({ dir, index });
    expect(await cache.init()).toMatchObject({ otherCaches: 0, temporaryFilesRemoved: 2, temporaryFilesKept: 0, filesRemoved: 1 });
    expect(await fsp.readdir(path.join(dir, 'procs'))).toEqual([expect.stringMatching(new RegExp(`^${process.pid}-[0-9a-f]+@`))]);
  });

  it('lets two caches of one process share the folder: neither removes the downloads or files of the other', async () => {
    const first = await openCache();
    const downloading = await first.createTemp();
    await put('repo/first.bin', randomFile(1000));
    // A second instance on the same folder (another app in the same process), with its own index.
    const second = new DiskCache({ dir, index: new Keyv<CacheRecord>() });
    try {
      expect(await second.init()).toMatchObject({ otherCaches: 1, temporaryFilesKept: 1, temporaryFilesRemoved: 0, filesLeft: 1, filesRemoved: 0 });
      expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([path.basename(downloading.path)]);
      expect(first.lookup('repo/first.bin')).not.toBeNull();
      expect((await fsp.readdir(path.join(dir, 'procs'))).length).toBe(2);
    } finally {
      await downloading.handle.close();
      await first.discard(downloading);
      await second.close();
    }
    expect((await fsp.readdir(path.join(dir, 'procs'))).length).toBe(1);
  });

  it('lists the files it put in the folder in its registration, written anew once the list outgrows the cache', async () => {
    // Room for one file, and no slack: the list is written anew as soon as it is longer than twice the cache.
    cache = new DiskCache({ dir, index, maxBytes: 1000, registrationSlack: 0 });
    await cache.init();
    const registration = async () => {
      const names = (await fsp.readdir(path.join(dir, 'procs'))).filter((n) => !n.startsWith('.'));
      expect(names).toHaveLength(1);
      return (await fsp.readFile(path.join(dir, 'procs', names[0]!), 'utf8')).split('\n').slice(1, -1);
    };
    await put('a', randomFile(1000));
    await put('b', randomFile(1000));
    // 'a' was evicted for 'b', but a list of two for a cache of one is not too long yet.
    expect(await registration()).toEqual(['a', 'b']);
    for (const key of ['c', 'd', 'e', 'f']) await put(key, randomFile(1000));
    await cache.idle();
    // Written anew from what was cached when 'f' came, plus 'f'; never the evicted ones.
    expect(await registration()).toEqual(['e', 'f']);
    expect(cache.lookup('f')).not.toBeNull();
    expect((await fsp.readdir(path.join(dir, 'procs'))).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('starts even when files vanish while it looks at the folder', async () => {
    await fsp.mkdir(path.join(dir, 'files', 'repo'), { recursive: true });
    for (let i = 0; i < 200; i++) await fsp.writeFile(path.join(dir, 'files', 'repo', `f${i}.bin`), 'x');
    // Another process removes them meanwhile (a save dropping its cached copies, say).
    const removing = (async () => {
      for (let i = 199; i >= 0; i--) await fsp.rm(path.join(dir, 'files', 'repo', `f${i}.bin`), { force: true });
      await fsp.rm(path.join(dir, 'files', 'repo'), { recursive: true, force: true });
    })();
    await openCache();
    await removing;
    expect(cache.size).toBe(0);
  });

  it('tries init again after a failure (the disk may come back)', async () => {
    const blocked = path.join(dir, 'blocked');
    await fsp.writeFile(blocked, 'a file where the cache folder should be');
    cache = new DiskCache({ dir: blocked, index });
    await expect(cache.init()).rejects.toThrow();
    await fsp.rm(blocked);
    await expect(cache.init()).resolves.toMatchObject({ temporaryFilesRemoved: 0 });
  });

  it('deletes a file (after saving) while a reader that has it open keeps reading', async () => {
    await openCache();
    const body = randomFile(2 * MiB);
    await put('repo/x.bin', body);
    const reader = await cache.open('repo/x.bin');
    expect(await cache.delete('repo/x.bin')).toBe(true);
    expect(await cache.delete('repo/x.bin')).toBe(false);
    expect(cache.lookup('repo/x.bin')).toBeNull();
    expect(await index.get('repo/x.bin')).toBeUndefined();
    expect(await cache.open('repo/x.bin')).toBeNull();
    expect((await reader!.readAll()).equals(body)).toBe(true);
    await reader!.close();
    // The emptied folder went with it.
    expect(await fsp.readdir(path.join(dir, 'files'))).toEqual([]);
  });
});

describe('DiskCache with fills', () => {
  let upstream: FaultServer;
  let engine: FillEngine;
  beforeAll(async () => {
    upstream = await startFaultServer();
  });
  afterAll(async () => {
    await upstream.close();
  });
  afterEach(async () => {
    await engine.close();
  });

  it('never evicts a filled file while a reader of the fill is still on it', async () => {
    await openCache(2 * MiB);
    engine = new FillEngine({ cache });
    const body = randomFile(MiB);
    upstream.put('/pinned.bin', body);
    const fill = engine.fill('pinned.bin', [source('pinned.bin', `${upstream.origin}/pinned.bin`, body)]);
    const reader = fill.createReader();
    const slow = await firstChunk(reader);
    await fill.done;

    const other = randomFile(MiB);
    await put('x', other);
    await put('y', other);
    // pinned.bin is the least recent, but its reader is still on it.
    expect(evicted).toEqual(['x']);
    expect(cache.lookup('pinned.bin')).not.toBeNull();

    expect(sha256(Buffer.concat([slow.first, await slow.rest()]))).toBe(sha256(body));
    // The fill's hold ends when its last reader has closed the shared descriptor.
    if (!reader.closed) await once(reader, 'close');
    await put('z', other);
    expect(evicted).toEqual(['x', 'pinned.bin']);
  });

  it('keeps a download going and caches it while another process starts on the same cache folder', async () => {
    await openCache();
    engine = new FillEngine({ cache });
    const body = randomFile(3 * MiB);
    upstream.put('/shared.bin', body);
    const fill = engine.fill('shared.bin', [source('shared.bin', `${upstream.origin}/shared.bin?mode=gate&after=${MiB}`, body)]);
    const bytes = collect(fill.createReader());
    await upstream.gateReached('/shared.bin');
    await until(fill, () => fill.bytesWritten >= MiB);

    // Another process (a second app instance, or `lazy-content worker` on the same data folder) starts its
    // cache on this folder, while the download is held at the upstream's gate.
    const script = `import { DiskCache } from ${JSON.stringify(pathToFileURL(path.join(repoRoot, 'packages/core/dist/index.js')).href)};
const cache = new DiskCache({ dir: ${JSON.stringify(dir)} });
process.stdout.write(JSON.stringify(await cache.init()));
await cache.close();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ otherCaches: 1, temporaryFilesKept: 1, temporaryFilesRemoved: 0 });

    upstream.release('/shared.bin');
    expect(sha256(await bytes)).toBe(sha256(body));
    await fill.done;
    // The temp file was still there to be renamed: the file is cached, and served without the upstream.
    expect(cache.lookup('shared.bin')?.digest).toBe(sha256(body));
    const opened = await engine.open('shared.bin', [source('shared.bin', `${upstream.origin}/shared.bin`, body)]);
    expect(opened.kind).toBe('cached');
    if (opened.kind === 'cached') await opened.file.close();
    expect(upstream.requests('/shared.bin')).toBe(1);
  });

  it('counts a download in progress against the limit', async () => {
    await openCache(3 * MiB);
    engine = new FillEngine({ cache });
    const small = randomFile(MiB);
    await put('old-1', small);
    await put('old-2', small);
    const body = randomFile(2 * MiB);
    upstream.put('/big.bin', body);
    const fill = engine.fill('big.bin', [source('big.bin', `${upstream.origin}/big.bin`, body)]);
    await fill.head;
    // 2 MiB reserved by the download + 2 MiB cached > 3 MiB: the oldest goes before the download ends.
    expect(evicted).toEqual(['old-1']);
    expect(await digestOf(fill.createReader())).toBe(sha256(body));
    await fill.done;
  });
});
