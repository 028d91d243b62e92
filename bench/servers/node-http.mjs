// Bare node:http: fs.stat + fs.createReadStream piped to the response, files of ROOT at /content/.
// No ETag, no ranges, no conditional requests: a floor for what a Node.js file server must do.
import { createReadStream, stat } from 'node:fs';
import { createServer } from 'node:http';
import * as path from 'node:path';
import { exitOnSignal, listen, serverArgs } from './common.mjs';

const args = serverArgs();
const PREFIX = '/content/';

function reply(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const pathname = q === -1 ? url : url.slice(0, q);
  if (!pathname.startsWith(PREFIX)) return reply(res, 404, 'Not found\n');
  let rel;
  try {
    rel = decodeURIComponent(pathname.slice(PREFIX.length));
  } catch {
    return reply(res, 400, 'Bad path\n');
  }
  if (rel.includes('\0') || rel.split('/').includes('..')) return reply(res, 400, 'Bad path\n');
  const file = path.join(args.root, rel);
  stat(file, (err, st) => {
    if (err || !st.isFile()) return reply(res, 404, 'Not found\n');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
    if (req.method === 'HEAD') return res.end();
    const stream = createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
});
listen(server, args);
exitOnSignal(async () => server.close());
