// A file of the fan-out benchmark sent at a fixed rate per connection, from one shared buffer. Used by the
// origin (bench/fanout/origin.mjs) and by the Node floor servers (bench/fanout/node-floor.mjs).
//
// Pacing: the body goes out in 64 KiB slices of one shared buffer (no copy, no per-byte work), each slice
// when the connection's clock says it is due (slice k at k·64 KiB / rate seconds); a timer wakes the writer
// when the next slice is due, and socket back-pressure (a full send buffer) is waited on with `drain`.
import { performance } from 'node:perf_hooks';
import { patternTwice, slice } from './data.mjs';

const SLICE = 64 * 1024;
export const LAST_MODIFIED = new Date(Date.UTC(2024, 0, 1)).toUTCString();

/**
 * Returns `send(req, res, size, count)`: answers 200 at once with Content-Length, Cache-Control and
 * Last-Modified, then the `size` bytes at `rate` bytes per second. `count` ({ bytesSent, completed }) is updated.
 */
export function pacedSender(rate) {
  const twice = patternTwice();
  return function send(req, res, size, count) {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': size,
      'cache-control': 'public, max-age=3600',
      'last-modified': LAST_MODIFIED,
    });
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    const t0 = performance.now();
    let sent = 0;
    let timer;
    res.on('close', () => clearTimeout(timer));
    const pump = () => {
      timer = undefined;
      if (res.destroyed) return;
      const due = ((performance.now() - t0) / 1000) * rate;
      while (sent <= due) {
        const n = Math.min(SLICE, size - sent);
        const ok = res.write(slice(twice, sent, n));
        sent += n;
        count.bytesSent += n;
        if (sent >= size) {
          res.end(() => count.completed++);
          return;
        }
        if (!ok) {
          res.once('drain', pump);
          return;
        }
      }
      // The next slice is due when the clock reaches `sent` bytes.
      timer = setTimeout(pump, Math.max(1, (sent / rate) * 1000 - (performance.now() - t0)));
    };
    pump();
  };
}
