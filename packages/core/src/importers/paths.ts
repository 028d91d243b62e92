import { catalogKey } from '../catalog/catalog.js';
import { LazyContentError } from '../errors.js';
import { normalizePath } from '../path.js';

/** Longest catalog path, as `catalogKey` allows. */
const MAX_PATH = 4096;
const MAX_SEGMENT_BYTES = 255;

/** Why a path of a repository cannot be imported; the caller says where it was found. */
export class BadRepositoryPath extends Error {}

/** The import prefix as a key prefix: `''` or segments ending with `/`, e.g. `demo-file/`. */
export function prefixKeyOf(prefix: string): string {
  const { key } = normalizePath(prefix.replace(/^\/+/, ''), MAX_PATH, { decoded: true });
  return key === '' ? '' : `${key}/`;
}

/**
 * The key below the repository's base of a file path written as a plain name (PULP_MANIFEST): `.` and `//` are
 * dropped and `..` resolved, never percent-decoded. Returns the segments, for the URL.
 */
export function plainRelativePath(raw: string): string[] {
  if (raw === '') throw new BadRepositoryPath('the path is empty');
  if (raw.startsWith('/')) throw new BadRepositoryPath(`path ${JSON.stringify(raw)} is absolute, not relative to the repository`);
  if ([...raw].some((c) => c < ' ' || c === '\u007f' || c === '\\')) throw new BadRepositoryPath(`path ${JSON.stringify(raw)} holds a control character or a backslash`);
  const segments: string[] = [];
  for (const segment of raw.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) throw new BadRepositoryPath(`path ${JSON.stringify(raw)} leads outside the repository`);
      segments.pop();
      continue;
    }
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) throw new BadRepositoryPath(`path ${JSON.stringify(raw)} has a segment longer than 255 bytes`);
    segments.push(segment);
  }
  if (segments.length === 0 || /(^|\/)\.{0,2}$/.test(raw)) throw new BadRepositoryPath(`path ${JSON.stringify(raw)} names a folder, not a file`);
  return segments;
}

/** The URL of a file given as plain segments below `base` (which ends with `/`). */
export function plainUrl(segments: string[], base: string): string {
  return new URL(segments.map(encodeURIComponent).join('/'), base).toString();
}

/**
 * The key below the repository's base of a location written as a relative URL reference (`location href` of
 * yum metadata): percent-decoded once, like a request path.
 */
export function hrefRelativeKey(href: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(href)) {
    throw new BadRepositoryPath(`location ${JSON.stringify(href)} is an absolute URL, not relative to the repository`);
  }
  if (href.startsWith('/')) throw new BadRepositoryPath(`location ${JSON.stringify(href)} is absolute, not relative to the repository`);
  let normalized;
  try {
    normalized = normalizePath(href, MAX_PATH);
  } catch (err) {
    const why = (err as Error).message.replace(/^Bad request path: /, '');
    throw new BadRepositoryPath(`location ${JSON.stringify(href)} is not usable: ${why === 'path escapes the content root' ? 'it leads outside the repository' : why}`);
  }
  if (normalized.directory) throw new BadRepositoryPath(`location ${JSON.stringify(href)} names a folder, not a file`);
  return normalized.key;
}

/** The URL of a relative reference below `base`: `?` and `#` are parts of a file name there, never a query. */
export function hrefUrl(href: string, base: string): string {
  return new URL(href.replace(/[?#]/g, encodeURIComponent), base).toString();
}

/** The catalog path of a file: the import's prefix joined to its key below the base, checked like `addEntries` will. */
export function entryPath(prefixKey: string, relativeKey: string): string {
  const path = prefixKey + relativeKey;
  try {
    catalogKey(path);
  } catch (err) {
    throw new BadRepositoryPath((err as LazyContentError).message);
  }
  return path;
}

/** A directory URL: the base of a repository, or an `xml:base`, always ends with `/` so that it is resolved below. */
export function directoryUrl(url: string, base?: string): string {
  const parsed = new URL(url, base);
  if (!parsed.pathname.endsWith('/')) parsed.pathname += '/';
  parsed.hash = '';
  return parsed.toString();
}

export function upstreamError(message: string, cause?: unknown): LazyContentError {
  return new LazyContentError('UPSTREAM_FAILED', message, cause === undefined ? {} : { cause });
}
