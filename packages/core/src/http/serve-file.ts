import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import fresh from 'fresh';
import parseRange from 'range-parser';
import { LazyContentError } from '../errors.js';
import type { FileOutcome } from '../outcome.js';
import type { FileMeta } from '../store/file-meta-cache.js';
import { type ByteRange, type ByteSource, type MultipartPart, MultipartBody, RangeBody } from './bodies.js';

export interface ServeSettings {
  /** `Cache-Control` for files, or false for none. */
  cacheControl: string | false;
  /** More ranges than this in one request are answered with the whole file (200). */
  maxRanges: number;
}

/** The verdict of conditional and range evaluation, before any byte is read. */
export type Plan =
  | { status: 304 }
  | { status: 200 }
  | { status: 206; ranges: ByteRange[] };

/** Strong comparison of an entity tag against a list from `If-Match` / `If-Range` (RFC 9110 §8.8.3.2). */
function strongMatch(list: string, etag: string): boolean {
  if (etag.startsWith('W/')) return false;
  return list.split(',').some((t) => t.trim() === etag);
}

function parseDate(value: string | undefined): number {
  return value === undefined ? Number.NaN : Date.parse(value);
}

/**
 * Decides 200, 206, 304, 412 or 416 for a file, in the order of RFC 9110 §13.2.2: If-Match, then
 * If-Unmodified-Since, then If-None-Match / If-Modified-Since, then If-Range and Range.
 */
export function planResponse(
  method: string,
  headers: IncomingHttpHeaders,
  meta: FileMeta,
  settings: ServeSettings,
): Plan {
  const lastModifiedMs = Date.parse(meta.lastModified);
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    if (ifMatch.trim() !== '*' && !strongMatch(ifMatch, meta.etag)) throw preconditionFailed();
  } else {
    const since = parseDate(headers['if-unmodified-since']);
    if (!Number.isNaN(since) && lastModifiedMs > since) throw preconditionFailed();
  }

  if (
    (headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined) &&
    fresh(headers, { etag: meta.etag, 'last-modified': meta.lastModified })
  ) {
    return { status: 304 };
  }

  const range = headers.range;
  if (range === undefined || (method !== 'GET' && method !== 'HEAD')) return { status: 200 };
  const ifRange = headers['if-range'];
  if (typeof ifRange === 'string') {
    const matches = ifRange.includes('"')
      ? strongMatch(ifRange, meta.etag)
      : parseDate(ifRange) === lastModifiedMs && !Number.isNaN(lastModifiedMs);
    if (!matches) return { status: 200 };
  }
  const parsed = parseRange(meta.info.size, range, { combine: true });
  if (parsed === -1) {
    throw new LazyContentError('RANGE_NOT_SATISFIABLE', 'Range not satisfiable', {
      headers: { 'content-range': `bytes */${meta.info.size}`, 'accept-ranges': 'bytes' },
    });
  }
  // A malformed Range, another unit, or too many ranges: the header is ignored, as RFC 9110 allows.
  if (parsed === -2 || parsed.type !== 'bytes' || parsed.length > settings.maxRanges) return { status: 200 };
  return { status: 206, ranges: parsed.map(({ start, end }) => ({ start, end })) };
}

function preconditionFailed(): LazyContentError {
  return new LazyContentError('PRECONDITION_FAILED', 'Precondition failed');
}

/** Headers that every 200/206/304 for this file carries. */
function validatorHeaders(meta: FileMeta, settings: ServeSettings): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    etag: meta.etag,
    'last-modified': meta.lastModified,
    'accept-ranges': 'bytes',
  };
  if (settings.cacheControl !== false) headers['cache-control'] = settings.cacheControl;
  return headers;
}

/**
 * Builds the outcome for a plan. `source` is null for HEAD and 304, where no byte is sent; otherwise it is
 * owned by the returned body.
 */
export function fileOutcome(
  plan: Plan,
  meta: FileMeta,
  settings: ServeSettings,
  source: ByteSource | null,
): FileOutcome {
  const headers = validatorHeaders(meta, settings);
  if (plan.status === 304) return { kind: 'file', status: 304, headers };
  headers['x-content-type-options'] = 'nosniff';
  const size = meta.info.size;
  if (plan.status === 200) {
    headers['content-type'] = meta.contentType;
    headers['content-length'] = size;
    const body = source && size > 0 ? new RangeBody(source, { start: 0, end: size - 1 }) : undefined;
    if (source && !body) releaseSource(source);
    return { kind: 'file', status: 200, headers, body };
  }
  const { ranges } = plan;
  if (ranges.length === 1) {
    const [range] = ranges as [ByteRange];
    headers['content-type'] = meta.contentType;
    headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
    headers['content-length'] = range.end - range.start + 1;
    return { kind: 'file', status: 206, headers, body: source ? new RangeBody(source, range) : undefined };
  }
  const boundary = randomBytes(12).toString('hex');
  const parts: MultipartPart[] = ranges.map((r, i) => ({
    ...r,
    head: Buffer.from(
      `${i === 0 ? '' : '\r\n'}--${boundary}\r\ncontent-type: ${meta.contentType}\r\ncontent-range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`,
    ),
  }));
  const trailer = Buffer.from(`\r\n--${boundary}--\r\n`);
  headers['content-type'] = `multipart/byteranges; boundary=${boundary}`;
  headers['content-length'] = parts.reduce((n, p) => n + p.head.length + p.end - p.start + 1, trailer.length);
  return { kind: 'file', status: 206, headers, body: source ? new MultipartBody(source, parts, trailer) : undefined };
}

function releaseSource(source: ByteSource): void {
  if (source.kind === 'file') source.file.close().catch(() => undefined);
}
