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
  it('lists every problem at once', () => {
    const m = message({ prefix: 1, maxRanges: 'x' });
    expect(m).toMatch(/"prefix"/);
    expect(m).toMatch(/"maxRanges"/);
  });
});
