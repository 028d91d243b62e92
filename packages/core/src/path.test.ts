import { describe, expect, it } from 'vitest';
import { LazyContentError } from './errors.js';
import { normalizePath, stripPrefix } from './path.js';

const norm = (raw: string) => normalizePath(raw, 4096);

function badPath(raw: string, max = 4096): string {
  try {
    normalizePath(raw, max);
  } catch (err) {
    expect(err).toBeInstanceOf(LazyContentError);
    expect((err as LazyContentError).status).toBe(400);
    return (err as LazyContentError).message;
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be refused`);
}

describe('stripPrefix', () => {
  it('returns the remainder below the prefix, without the query', () => {
    expect(stripPrefix('/content/a/b.rpm?x=1', '/content/')).toBe('a/b.rpm');
    expect(stripPrefix('/content/', '/content/')).toBe('');
  });
  it('treats the prefix without its slash as the prefix folder', () => {
    expect(stripPrefix('/content', '/content/')).toBe('');
    expect(stripPrefix('/content?x', '/content/')).toBe('');
  });
  it('does not match a longer sibling or another path', () => {
    expect(stripPrefix('/contents/a', '/content/')).toBeNull();
    expect(stripPrefix('/other', '/content/')).toBeNull();
    expect(stripPrefix('/', '/content/')).toBeNull();
  });
  it('matches everything with the root prefix', () => {
    expect(stripPrefix('/a/b', '/')).toBe('a/b');
  });
});

describe('normalizePath', () => {
  it('keeps an ordinary path', () => {
    expect(norm('a/b/c.rpm')).toEqual({ key: 'a/b/c.rpm', directory: false });
  });
  it('collapses empty and dot segments', () => {
    expect(norm('a//b/./c')).toEqual({ key: 'a/b/c', directory: false });
    expect(norm('/a')).toEqual({ key: 'a', directory: false });
  });
  it('resolves .. inside the root', () => {
    expect(norm('a/b/../c')).toEqual({ key: 'a/c', directory: false });
  });
  it('marks directories', () => {
    expect(norm('')).toEqual({ key: '', directory: true });
    expect(norm('a/b/')).toEqual({ key: 'a/b', directory: true });
    expect(norm('a/b/.')).toEqual({ key: 'a/b', directory: true });
    expect(norm('a/b/c/..')).toEqual({ key: 'a/b', directory: true });
  });
  it('decodes percent-encoding exactly once', () => {
    expect(norm('a%20b/%C3%A9t%C3%A9.txt').key).toBe('a b/été.txt');
    expect(norm('a/%252e%252e/b').key).toBe('a/%2e%2e/b');
  });
  it('takes % literally for a path that is decoded already (a catalog path)', () => {
    expect(normalizePath('a%2e%2e/b%zz', 4096, { decoded: true }).key).toBe('a%2e%2e/b%zz');
    expect(() => normalizePath('../x', 4096, { decoded: true })).toThrow(LazyContentError);
  });

  it('refuses .. that climbs above the root, also when encoded', () => {
    expect(badPath('..')).toMatch(/escapes/);
    expect(badPath('a/../../b')).toMatch(/escapes/);
    expect(badPath('%2e%2e/etc/passwd')).toMatch(/escapes/);
    expect(badPath('a%2F..%2F..%2Fetc')).toMatch(/escapes/);
  });
  it('refuses NUL, control characters and backslashes', () => {
    expect(badPath('a%00b')).toMatch(/control/);
    expect(badPath('a\u0000b')).toMatch(/control/);
    expect(badPath('a%0Ab')).toMatch(/control/);
    expect(badPath('a%7Fb')).toMatch(/control/);
    expect(badPath('a\\..\\b')).toMatch(/backslash/);
    expect(badPath('a%5C..%5Cb')).toMatch(/backslash/);
  });
  it('refuses invalid encodings, including overlong UTF-8', () => {
    expect(badPath('a%zz')).toMatch(/percent/);
    expect(badPath('a%')).toMatch(/percent/);
    expect(badPath('%C0%AE%C0%AE/x')).toMatch(/percent/);
    expect(badPath('%FF')).toMatch(/percent/);
  });
  it('refuses over-long paths and segments', () => {
    expect(badPath('a'.repeat(100), 50)).toMatch(/too long/);
    expect(badPath(`a/${'b'.repeat(256)}`)).toMatch(/segment too long/);
    expect(norm(`a/${'b'.repeat(255)}`).key).toHaveLength(257);
  });
});
