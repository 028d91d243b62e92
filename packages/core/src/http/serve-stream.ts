import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import parseRange from 'range-parser';
import { LazyContentError } from '../errors.js';
import type { StreamOutcome } from '../outcome.js';
import { contentTypeFor } from '../store/file-meta-cache.js';
import type { Fill, FillHead } from '../streamer/fill.js';
import type { ServeSettings } from './serve-file.js';

/**
 * Status and headers for a file that is still arriving. Sent only once the upstream answered, so that a
 * failing source could still be replaced. Content-Length whenever the size is known, so that a cut transfer
 * is visible to the client. One range is served from the growing file (206); several ranges, or any range
 * when the size is unknown or an `If-Range` is sent (there is no validator yet), get the whole file (200),
 * which RFC 9110 allows.
 */
export function fillOutcome(
  method: string,
  headers: IncomingHttpHeaders,
  key: string,
  head: FillHead,
  fill: Fill,
  settings: ServeSettings,
): StreamOutcome {
  const out: OutgoingHttpHeaders = {
    'content-type': head.contentType ?? contentTypeFor(key),
    'x-content-type-options': 'nosniff',
  };
  if (settings.cacheControl !== false) out['cache-control'] = settings.cacheControl;
  if (head.lastModified) out['last-modified'] = head.lastModified;
  const size = head.size;
  if (size === null) {
    return { kind: 'stream', status: 200, headers: out, body: method === 'HEAD' ? undefined : fill.createBody() };
  }
  out['accept-ranges'] = 'bytes';
  const range = headers.range;
  if (range !== undefined && headers['if-range'] === undefined) {
    const parsed = parseRange(size, range, { combine: true });
    if (parsed === -1) {
      throw new LazyContentError('RANGE_NOT_SATISFIABLE', 'Range not satisfiable', {
        headers: { 'content-range': `bytes */${size}`, 'accept-ranges': 'bytes' },
      });
    }
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      const { start, end } = parsed[0]!;
      out['content-range'] = `bytes ${start}-${end}/${size}`;
      out['content-length'] = end - start + 1;
      return { kind: 'stream', status: 206, headers: out, body: method === 'HEAD' ? undefined : fill.createBody({ start, end }) };
    }
  }
  out['content-length'] = size;
  const body = method === 'HEAD' || size === 0 ? undefined : fill.createBody({ start: 0, end: size - 1 });
  return { kind: 'stream', status: 200, headers: out, body };
}

/** HEAD for a file not downloaded yet whose size the catalog knows: answered without touching the upstream. */
export function catalogHeadOutcome(key: string, size: number, contentType: string | null, settings: ServeSettings): StreamOutcome {
  const headers: OutgoingHttpHeaders = {
    'content-type': contentType ?? contentTypeFor(key),
    'content-length': size,
    'accept-ranges': 'bytes',
    'x-content-type-options': 'nosniff',
  };
  if (settings.cacheControl !== false) headers['cache-control'] = settings.cacheControl;
  return { kind: 'stream', status: 200, headers };
}
