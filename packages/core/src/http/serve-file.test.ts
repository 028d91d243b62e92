import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LazyContentError } from '../errors.js';
import { metaFor } from '../store/file-meta-cache.js';
import { fileOutcome, planResponse, type ServeSettings } from './serve-file.js';

const settings: ServeSettings = { cacheControl: 'public, max-age=0', maxRanges: 4 };
const data = Buffer.from('0123456789abcdefghij');
const meta = metaFor('dir/file.txt', { size: data.length, mtimeMs: Date.UTC(2026, 0, 2, 3, 4, 5), version: 'v1' }, data);

const plan = (headers: IncomingHttpHeaders, method = 'GET') => planResponse(method, headers, meta, settings);

function rejected(headers: IncomingHttpHeaders): LazyContentError {
  try {
    plan(headers);
  } catch (err) {
    return err as LazyContentError;
  }
  throw new Error('expected an error');
}

async function bodyOf(headers: IncomingHttpHeaders): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const outcome = fileOutcome(plan(headers), meta, settings, { kind: 'buffer', data });
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((r) => sink.on('end', r));
  if (outcome.body) await outcome.body.writeTo(sink);
  else sink.end();
  await ended;
  return { status: outcome.status, headers: outcome.headers, body: Buffer.concat(chunks) };
}

describe('planResponse: conditional requests', () => {
  it('answers 200 without conditions', () => {
    expect(plan({})).toEqual({ status: 200 });
  });
  it('answers 304 for a matching If-None-Match, also in a list and for *', () => {
    expect(plan({ 'if-none-match': meta.etag })).toEqual({ status: 304 });
    expect(plan({ 'if-none-match': `"other", ${meta.etag}` })).toEqual({ status: 304 });
    expect(plan({ 'if-none-match': '*' })).toEqual({ status: 304 });
    expect(plan({ 'if-none-match': '"other"' })).toEqual({ status: 200 });
  });
  it('answers 304 for If-Modified-Since at or after Last-Modified', () => {
    expect(plan({ 'if-modified-since': meta.lastModified })).toEqual({ status: 304 });
    expect(plan({ 'if-modified-since': new Date(Date.UTC(2025, 0, 1)).toUTCString() })).toEqual({ status: 200 });
  });
  it('lets If-None-Match win over If-Modified-Since', () => {
    expect(plan({ 'if-none-match': '"other"', 'if-modified-since': meta.lastModified })).toEqual({ status: 200 });
  });
  it('answers 412 for a failed If-Match or If-Unmodified-Since', () => {
    expect(rejected({ 'if-match': '"other"' }).status).toBe(412);
    expect(rejected({ 'if-unmodified-since': new Date(Date.UTC(2025, 0, 1)).toUTCString() }).status).toBe(412);
    expect(plan({ 'if-match': meta.etag })).toEqual({ status: 200 });
    expect(plan({ 'if-match': '*' })).toEqual({ status: 200 });
    expect(plan({ 'if-unmodified-since': meta.lastModified })).toEqual({ status: 200 });
  });
});

describe('planResponse: ranges', () => {
  it('answers 206 with one range, combining overlaps', () => {
    expect(plan({ range: 'bytes=2-5' })).toEqual({ status: 206, ranges: [{ start: 2, end: 5 }] });
    expect(plan({ range: 'bytes=-3' })).toEqual({ status: 206, ranges: [{ start: 17, end: 19 }] });
    expect(plan({ range: 'bytes=15-' })).toEqual({ status: 206, ranges: [{ start: 15, end: 19 }] });
    expect(plan({ range: 'bytes=0-3,2-6' })).toEqual({ status: 206, ranges: [{ start: 0, end: 6 }] });
  });
  it('answers 416 with bytes */size for an unsatisfiable range', () => {
    const err = rejected({ range: 'bytes=20-30' });
    expect(err.status).toBe(416);
    expect(err.headers['content-range']).toBe('bytes */20');
  });
  it('ignores a malformed range, another unit, or too many ranges', () => {
    expect(plan({ range: 'bytes=abc' })).toEqual({ status: 200 });
    expect(plan({ range: 'items=0-1' })).toEqual({ status: 200 });
    expect(plan({ range: 'bytes=0-0,2-2,4-4,6-6,8-8' })).toEqual({ status: 200 });
  });
  it('honours If-Range with the strong ETag or the exact date, and ignores Range otherwise', () => {
    expect(plan({ range: 'bytes=0-1', 'if-range': meta.etag })).toEqual({ status: 206, ranges: [{ start: 0, end: 1 }] });
    expect(plan({ range: 'bytes=0-1', 'if-range': meta.lastModified })).toEqual({ status: 206, ranges: [{ start: 0, end: 1 }] });
    expect(plan({ range: 'bytes=0-1', 'if-range': '"stale"' })).toEqual({ status: 200 });
    expect(plan({ range: 'bytes=0-1', 'if-range': `W/${meta.etag}` })).toEqual({ status: 200 });
    expect(plan({ range: 'bytes=0-1', 'if-range': new Date(Date.UTC(2025, 0, 1)).toUTCString() })).toEqual({ status: 200 });
  });
});

describe('fileOutcome', () => {
  it('sends the whole file with validators, type and length', async () => {
    const r = await bodyOf({});
    expect(r.status).toBe(200);
    expect(r.body.equals(data)).toBe(true);
    expect(r.headers).toMatchObject({
      'content-type': 'text/plain; charset=utf-8',
      'content-length': 20,
      'accept-ranges': 'bytes',
      etag: meta.etag,
      'last-modified': 'Fri, 02 Jan 2026 03:04:05 GMT',
      'cache-control': 'public, max-age=0',
    });
  });
  it('sends one range with Content-Range', async () => {
    const r = await bodyOf({ range: 'bytes=2-5' });
    expect(r.status).toBe(206);
    expect(r.body.toString()).toBe('2345');
    expect(r.headers['content-range']).toBe('bytes 2-5/20');
    expect(r.headers['content-length']).toBe(4);
  });
  it('sends several ranges as multipart/byteranges with an exact Content-Length', async () => {
    const r = await bodyOf({ range: 'bytes=0-1,10-12' });
    expect(r.status).toBe(206);
    const type = String(r.headers['content-type']);
    const boundary = /boundary=(\w+)/.exec(type)?.[1];
    expect(boundary).toBeTruthy();
    expect(r.headers['content-length']).toBe(r.body.length);
    const text = r.body.toString();
    expect(text).toBe(
      `--${boundary}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-range: bytes 0-1/20\r\n\r\n01` +
        `\r\n--${boundary}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-range: bytes 10-12/20\r\n\r\nabc` +
        `\r\n--${boundary}--\r\n`,
    );
  });
  it('sends validators but no body or length on 304', () => {
    const outcome = fileOutcome({ status: 304 }, meta, settings, null);
    expect(outcome.body).toBeUndefined();
    expect(outcome.headers.etag).toBe(meta.etag);
    expect(outcome.headers['content-length']).toBeUndefined();
  });
  it('omits Cache-Control when configured off', () => {
    const outcome = fileOutcome({ status: 200 }, meta, { ...settings, cacheControl: false }, null);
    expect(outcome.headers['cache-control']).toBeUndefined();
  });
});
