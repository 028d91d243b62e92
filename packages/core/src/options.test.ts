import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaults, OptionsError, resolveOptions } from './options.js';

function message(input: unknown): string {
  try {
    resolveOptions(input as never);
  } catch (err) {
    expect(err).toBeInstanceOf(OptionsError);
    return (err as Error).message;
  }
  throw new Error('expected an OptionsError');
}

describe('resolveOptions', () => {
  it('fills every default when nothing is given', () => {
    const o = resolveOptions(undefined);
    expect(o.prefix).toBe('/content/');
    expect(o.dataDir).toBe(path.resolve('.lazy-content'));
    expect(o.root).toBe(path.resolve('.lazy-content/content'));
    expect(o.serving).toEqual(defaults.serving);
    expect(o.notFound).toBe('respond');
  });
  it('merges nested defaults field by field', () => {
    const o = resolveOptions({ serving: { metadataTtlMs: 5 } });
    expect(o.serving).toEqual({ ...defaults.serving, metadataTtlMs: 5 });
  });
  it('adds the trailing slash to a prefix and resolves folders', () => {
    const o = resolveOptions({ prefix: '/pulp/content', root: 'x/y' });
    expect(o.prefix).toBe('/pulp/content/');
    expect(o.root).toBe(path.resolve('x/y'));
  });
  it('names the option and what it takes', () => {
    expect(message({ prefix: 'content' })).toMatch(/option "prefix" must be a URL path that starts with "\/"/);
    expect(message({ maxRanges: 0 })).toMatch(/option "maxRanges" must be at least 1/);
    expect(message({ serving: { memoryCacheBytes: -1 } })).toMatch(/option "serving.memoryCacheBytes" must be at least 0/);
    expect(message({ notFound: 'skip' })).toMatch(/option "notFound" must be "respond" or "pass"/);
    expect(message({ store: {} })).toMatch(/option "store" must be a ContentStore/);
    expect(message({ logger: console.log })).toMatch(/option "logger" must be a logger/);
  });
  it('refuses unknown options, naming them', () => {
    expect(message({ prefx: '/x/' })).toMatch(/unknown option "prefx"/);
    expect(message({ serving: { ttl: 1 } })).toMatch(/unknown option in "serving" "ttl"/);
  });
  it('takes streamer.memoryWindowBytes as whole bytes from 0 (off) to 1 GiB, 8 MiB by default', () => {
    expect(resolveOptions(undefined).streamer.memoryWindowBytes).toBe(8 * 1024 * 1024);
    expect(defaults.streamer.memoryWindowBytes).toBe(8 * 1024 * 1024);
    expect(resolveOptions({ streamer: { memoryWindowBytes: 0 } }).streamer.memoryWindowBytes).toBe(0);
    expect(resolveOptions({ streamer: { memoryWindowBytes: 1024 * 1024 * 1024 } }).streamer.memoryWindowBytes).toBe(1024 * 1024 * 1024);
    // The other streamer defaults stay when only the window is given.
    expect(resolveOptions({ streamer: { memoryWindowBytes: 65536 } }).streamer).toMatchObject({ holdbackBytes: defaults.streamer.holdbackBytes, memoryWindowBytes: 65536 });
    expect(message({ streamer: { memoryWindowBytes: -1 } })).toMatch(/option "streamer.memoryWindowBytes" must be at least 0/);
    expect(message({ streamer: { memoryWindowBytes: 1.5 } })).toMatch(/option "streamer.memoryWindowBytes" must be a whole number/);
    expect(message({ streamer: { memoryWindowBytes: 1024 * 1024 * 1024 + 1 } })).toMatch(/option "streamer.memoryWindowBytes" must be at most 1073741824/);
    expect(message({ streamer: { memoryWindowBytes: '8M' } })).toMatch(/option "streamer.memoryWindowBytes" must be a number/);
  });
  it('takes catalog.lookupCacheMs as whole milliseconds from 0 to a day, 1000 by default', () => {
    expect(resolveOptions(undefined).catalog.lookupCacheMs).toBe(1000);
    expect(resolveOptions({ catalog: { lookupCacheMs: 0 } }).catalog.lookupCacheMs).toBe(0);
    expect(resolveOptions({ catalog: { lookupCacheMs: 86_400_000 } }).catalog.lookupCacheMs).toBe(86_400_000);
    expect(resolveOptions({ catalog: { database: 'x.sqlite', lookupCacheMs: 50 } }).catalog).toMatchObject({ database: 'x.sqlite', lookupCacheMs: 50 });
    expect(message({ catalog: { lookupCacheMs: -1 } })).toMatch(/option "catalog.lookupCacheMs" must be at least 0/);
    expect(message({ catalog: { lookupCacheMs: 0.5 } })).toMatch(/option "catalog.lookupCacheMs" must be a whole number/);
    expect(message({ catalog: { lookupCacheMs: 86_400_001 } })).toMatch(/option "catalog.lookupCacheMs" must be at most 86400000/);
  });
  it('lists every problem at once', () => {
    const m = message({ prefix: 1, maxRanges: 'x' });
    expect(m).toMatch(/"prefix"/);
    expect(m).toMatch(/"maxRanges"/);
  });
});
