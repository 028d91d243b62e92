import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLazyContent, type LazyContent } from './lazy-content.js';
import type { LazyContentOptions } from './options.js';
import type { ContentRequest, Outcome } from './outcome.js';
import type { ContentStore } from './store/content-store.js';
import { FsContentStore } from './store/fs-store.js';

let dir: string;
const instances: LazyContent[] = [];

beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-core-'));
});
afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
  await fsp.rm(dir, { recursive: true, force: true });
});

function make(options: LazyContentOptions = {}): LazyContent {
  const lc = createLazyContent({ root: dir, dataDir: path.join(dir, '.data'), logger: false, ...options });
  instances.push(lc);
  return lc;
}

const req = (url: string, extra: Partial<ContentRequest> = {}): ContentRequest => ({ method: 'GET', url, headers: {}, ...extra });

function discard(outcome: Outcome): Outcome {
  if ((outcome.kind === 'file' || outcome.kind === 'stream') && outcome.body) outcome.body.discard();
  return outcome;
}

describe('LazyContent.handle', () => {
  it('passes requests outside the prefix', async () => {
    expect(await make().handle(req('/elsewhere'))).toEqual({ kind: 'pass' });
    expect(await make().handle(req('/contentx/a'))).toEqual({ kind: 'pass' });
  });

  it('answers 404 or passes for a missing file, by option', async () => {
    expect(await make().handle(req('/content/missing'))).toMatchObject({ kind: 'error', status: 404 });
    expect(await make({ notFound: 'pass' }).handle(req('/content/missing'))).toEqual({ kind: 'pass' });
    expect(await make().handle(req('/content/'))).toMatchObject({ kind: 'error', status: 404 });
  });

  it('answers 405 with Allow, or passes, for other methods', async () => {
    expect(await make().handle(req('/content/a', { method: 'POST' }))).toMatchObject({
      kind: 'error',
      status: 405,
      headers: { allow: 'GET, HEAD' },
    });
    expect(await make({ otherMethods: 'pass' }).handle(req('/content/a', { method: 'DELETE' }))).toEqual({ kind: 'pass' });
  });

  it('answers 400 for a bad path', async () => {
    expect(await make().handle(req('/content/%2e%2e/x'))).toMatchObject({ kind: 'error', status: 400, code: 'BAD_PATH' });
  });

  it('never rejects: a failing store becomes a logged 500 with a generic message', async () => {
    const failing: ContentStore = {
      stat: () => Promise.reject(new Error('EIO: disk on fire at /secret/path')),
      open: () => Promise.reject(new Error('EIO')),
      put: () => Promise.reject(new Error('EIO')),
      delete: () => Promise.reject(new Error('EIO')),
    };
    const error = vi.fn();
    const lc = make({ store: failing, logger: { debug() {}, info() {}, warn() {}, error } });
    const outcome = await lc.handle(req('/content/a'));
    expect(outcome).toEqual({ kind: 'error', status: 500, code: 'INTERNAL', message: 'Internal error', headers: {} });
    expect(error).toHaveBeenCalledOnce();
  });

  it('answers 503 after close', async () => {
    const lc = make();
    await lc.close();
    await lc.close();
    expect(await lc.handle(req('/content/a'))).toMatchObject({ kind: 'error', status: 503 });
  });

  it('sees a replaced file after the metadata TTL, and at once through invalidate()', async () => {
    const store = new FsContentStore(dir);
    await store.put('f.txt', Buffer.from('one'));
    const lc = make({ store, serving: { metadataTtlMs: 60_000 } });
    const first = discard(await lc.handle(req('/content/f.txt')));
    await store.put('f.txt', Buffer.from('three'));
    const cached = discard(await lc.handle(req('/content/f.txt')));
    expect(cached).toMatchObject({ status: 200, headers: { 'content-length': 3 } });
    lc.invalidate('f.txt');
    const fresh = discard(await lc.handle(req('/content/f.txt')));
    expect(fresh).toMatchObject({ status: 200, headers: { 'content-length': 5 } });
    expect((fresh as { headers: { etag: string } }).headers.etag).not.toBe((first as { headers: { etag: string } }).headers.etag);

    const short = make({ store, serving: { metadataTtlMs: 0 } });
    discard(await short.handle(req('/content/f.txt')));
    await store.put('f.txt', Buffer.from('four'));
    expect(discard(await short.handle(req('/content/f.txt')))).toMatchObject({ headers: { 'content-length': 4 } });
  });

  it('re-reads a large file replaced between the cached stat and the open, so headers match the bytes', async () => {
    const store = new FsContentStore(dir);
    await store.put('big', Buffer.alloc(100, 1));
    const lc = make({ store, serving: { metadataTtlMs: 60_000, memoryCacheFileBytes: 10 } });
    discard(await lc.handle(req('/content/big')));
    await store.put('big', Buffer.alloc(200, 2));
    const outcome = discard(await lc.handle(req('/content/big')));
    expect(outcome).toMatchObject({ status: 200, headers: { 'content-length': 200 } });
  });

  it('stops serving a file deleted behind its back once it is opened', async () => {
    const store = new FsContentStore(dir);
    await store.put('big', Buffer.alloc(100, 1));
    const lc = make({ store, serving: { metadataTtlMs: 60_000, memoryCacheFileBytes: 10 } });
    discard(await lc.handle(req('/content/big')));
    await store.delete('big');
    expect(await lc.handle(req('/content/big'))).toMatchObject({ kind: 'error', status: 404 });
  });
});
