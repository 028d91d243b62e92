import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A fault-injecting upstream repository on 127.0.0.1. Files are served by path; the query picks the fault:
 *
 * | query                          | behaviour                                                              |
 * |--------------------------------|------------------------------------------------------------------------|
 * | (none) or `mode=normal`        | 200, Content-Length, the whole file                                    |
 * | `mode=chunked`                 | 200 without Content-Length (chunked), the whole file                   |
 * | `mode=slow&rate=B`             | throttled to about B bytes/s                                           |
 * | `mode=gate&after=N`            | N bytes, then waits for `release(path)` before the rest (sequencing)   |
 * | `mode=stall&after=N`           | N bytes, then nothing; the connection stays open                       |
 * | `mode=reset&after=N`           | N bytes, then the socket is reset (RST)                                |
 * | `mode=short&after=N`           | declares the full Content-Length, sends N bytes, then ends the socket  |
 * | `mode=corrupt[&at=I]`          | right length, byte I (default: the last) flipped                       |
 * | `mode=status&code=C`           | status C with a small body                                             |
 * | `mode=hang`                    | never sends response headers                                           |
 * | `mode=length&declare=N`        | declares Content-Length N, sends the whole file when N matches         |
 * | `mode=redirect&to=/p?q`        | 302 to `/p?q` on the same server                                       |
 *
 * Requests are counted per path (without the query), and the most concurrent requests seen is kept.
 */
export interface FaultServer {
  /** `http://127.0.0.1:port` or `https://...`. */
  readonly origin: string;
  readonly port: number;
  /** Serves `body` at `path`. */
  put(path: string, body: Buffer): void;
  /** Requests received for `path` (query ignored). */
  requests(path: string): number;
  /** Request headers of the last request for `path`. */
  lastHeaders(path: string): http.IncomingHttpHeaders | undefined;
  /** Most requests in flight at once, over the server's life. */
  readonly maxInFlight: number;
  /** Resolves when a `mode=gate` request for `path` has sent its first N bytes. */
  gateReached(path: string): Promise<void>;
  /** Lets `mode=gate` requests for `path` send the rest. */
  release(path: string): void;
  close(): Promise<void>;
}

export interface FaultServerOptions {
  /** Serve HTTPS with this key and certificate; `requestCert` demands a client certificate signed by `ca`. */
  tls?: { key: string; cert: string; ca?: string; requestCert?: boolean };
}

interface Gate {
  reached: Promise<void>;
  markReached: () => void;
  released: Promise<void>;
  release: () => void;
}

function makeGate(): Gate {
  let markReached!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => (markReached = r));
  const released = new Promise<void>((r) => (release = r));
  return { reached, markReached, released, release };
}

export async function startFaultServer(options: FaultServerOptions = {}): Promise<FaultServer> {
  const files = new Map<string, Buffer>();
  const counts = new Map<string, number>();
  const headers = new Map<string, http.IncomingHttpHeaders>();
  const gates = new Map<string, Gate>();
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  let maxInFlight = 0;

  const gateFor = (path: string): Gate => {
    let gate = gates.get(path);
    if (!gate) {
      gate = makeGate();
      gates.set(path, gate);
    }
    return gate;
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const path = url.pathname;
    const q = (name: string) => url.searchParams.get(name);
    counts.set(path, (counts.get(path) ?? 0) + 1);
    headers.set(path, req.headers);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      inFlight--;
    };
    res.on('close', finished);

    const mode = q('mode') ?? 'normal';
    if (mode === 'hang') return;
    if (mode === 'status') {
      res.writeHead(Number(q('code') ?? 500), { 'content-type': 'text/plain' });
      res.end('upstream says no\n');
      return;
    }
    if (mode === 'redirect') {
      res.writeHead(302, { location: q('to') ?? '/' });
      res.end();
      return;
    }
    const body = files.get(path);
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return;
    }
    const after = Math.min(Number(q('after') ?? 0), body.length);
    const head: http.OutgoingHttpHeaders = { 'content-type': 'application/x-test', 'last-modified': new Date(0).toUTCString() };
    if (mode !== 'chunked') head['content-length'] = mode === 'length' ? Number(q('declare')) : body.length;
    res.writeHead(200, head);

    switch (mode) {
      case 'normal':
      case 'chunked':
      case 'length':
        res.end(body);
        return;
      case 'corrupt': {
        const copy = Buffer.from(body);
        const at = Number(q('at') ?? copy.length - 1);
        copy[at] = (copy[at] ?? 0) ^ 0xff;
        res.end(copy);
        return;
      }
      case 'stall':
        res.write(body.subarray(0, after));
        return;
      case 'reset':
        res.write(body.subarray(0, after), () => req.socket.resetAndDestroy());
        return;
      case 'short':
        res.write(body.subarray(0, after), () => req.socket.end());
        return;
      case 'gate': {
        const gate = gateFor(path);
        res.write(body.subarray(0, after));
        gate.markReached();
        void gate.released.then(() => {
          if (!res.destroyed) res.end(body.subarray(after));
        });
        return;
      }
      case 'slow': {
        const perTick = Math.max(1, Math.floor(Number(q('rate') ?? 65536) / 20));
        let sent = 0;
        const timer = setInterval(() => {
          if (res.destroyed) {
            clearInterval(timer);
            timers.delete(timer);
            return;
          }
          const next = body.subarray(sent, sent + perTick);
          sent += next.length;
          if (sent >= body.length) {
            clearInterval(timer);
            timers.delete(timer);
            res.end(next);
          } else {
            res.write(next);
          }
        }, 50);
        timers.add(timer);
        return;
      }
      default:
        res.destroy();
    }
  };

  const server: http.Server = options.tls
    ? https.createServer(
        {
          key: options.tls.key,
          cert: options.tls.cert,
          ca: options.tls.ca,
          requestCert: options.tls.requestCert ?? false,
          rejectUnauthorized: options.tls.requestCert ?? false,
        },
        handler,
      )
    : http.createServer(handler);
  // Raw TCP sockets (for HTTPS too: destroying one ends its TLS session), so `close` never waits on a client.
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    origin: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    put: (path, body) => void files.set(path, body),
    requests: (path) => counts.get(path) ?? 0,
    lastHeaders: (path) => headers.get(path),
    get maxInFlight() {
      return maxInFlight;
    },
    gateReached: (path) => gateFor(path).reached,
    release: (path) => gateFor(path).release(),
    close: async () => {
      for (const gate of gates.values()) gate.release();
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 with nothing listening: connecting to it is refused. */
export async function refusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A TCP server that accepts connections and never says a word: a TLS handshake to it never completes. */
export async function startSilentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
