import { LazyContentError } from './errors.js';

/** A request path below the content prefix, decoded and normalised. */
export interface NormalizedPath {
  /** Segments joined by `/`, no leading or trailing slash: the key in the store and the catalog. */
  key: string;
  /** The request ended with `/` or named the prefix itself: a directory, never a file. */
  directory: boolean;
}

const MAX_SEGMENT_BYTES = 255;

/**
 * Returns the raw remainder of `url` after `prefix` (query stripped), or null when the URL is not below the
 * prefix. `prefix` starts and ends with `/`; the prefix without its trailing slash matches too (a directory).
 */
export function stripPrefix(url: string, prefix: string): string | null {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path.startsWith(prefix)) return path.slice(prefix.length);
  if (path.length === prefix.length - 1 && prefix.startsWith(path)) return '';
  return null;
}

/**
 * The one place where a request path is decoded and checked, before it reaches a store, the catalog or a URL.
 * Percent-decoding happens once (so `%252e` stays `%2e`, a literal name); `.` and empty segments are dropped;
 * `..` removes the segment before it and may never climb above the prefix. Anything else odd is a 400.
 * Catalog paths go through the same checks with `decoded: true`, so that both name a file the same way.
 */
export function normalizePath(raw: string, maxLength: number, options: { decoded?: boolean } = {}): NormalizedPath {
  if (raw.length > maxLength) throw badPath('path too long');
  let decoded = raw;
  // `decoded`: the path is a plain name already (a catalog path), not a URL path: `%` is a character.
  if (!options.decoded && raw.includes('%')) {
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      throw badPath('invalid percent-encoding');
    }
  }
  for (let i = 0; i < decoded.length; i++) {
    const c = decoded.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw badPath('control character in path');
    if (c === 0x5c) throw badPath('backslash in path');
  }
  const segments: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw badPath('path escapes the content root');
      segments.pop();
      continue;
    }
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) throw badPath('path segment too long');
    segments.push(segment);
  }
  const last = decoded.length === 0 ? '/' : decoded[decoded.length - 1];
  const directory = segments.length === 0 || last === '/' || decoded.endsWith('/.') || decoded.endsWith('/..');
  return { key: segments.join('/'), directory };
}

function badPath(why: string): LazyContentError {
  return new LazyContentError('BAD_PATH', `Bad request path: ${why}`);
}
