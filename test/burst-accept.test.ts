// burstAccept on real sockets: connections queued while the event loop is busy are accepted several per turn,
// every one of them is served by the server's own 'connection' handling (HTTP and TLS with a client
// certificate), the server counts them, and close() leaves nothing listening.
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { burstAccept } from '@lazy-content/core';
import { burstAccept as fromExpress } from '@lazy-content/express';
import { makeTestPki } from './upstream/certs.js';

const servers: net.Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    if ('closeAllConnections' in server) (server as http.Server).closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function listening<T extends net.Server>(server: T): Promise<T> {
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return server;
}

const portOf = (server: net.Server): number => (server.address() as net.AddressInfo).port;

/**
 * Opens `count` connections to `port` from another process and waits, blocked, until that process has them
 * all established and has exited: meanwhile this process's event loop cannot accept any, so they all wait in
 * the kernel's queue. (Their peer is gone by the time they are accepted; accepting is what is counted.)
 */
function queueConnections(port: number, count: number): void {
  const script = `const net = require('node:net'); let open = 0;
for (let i = 0; i < ${count}; i++) net.connect(${port}, '127.0.0.1', () => { if (++open === ${count}) process.exit(0); });`;
  execFileSync(process.execPath, ['-e', script], { timeout: 20_000 });
}

/** How many connections each turn of the event loop accepted, until `total` were accepted. */
async function acceptedPerTurn(server: net.Server, total: number): Promise<number[]> {
  const turns: number[] = [];
  let current = 0;
  let seen = 0;
  const onConnection = (socket: net.Socket): void => {
    socket.on('error', () => undefined);
    current++;
    seen++;
  };
  server.on('connection', onConnection);
  await new Promise<void>((resolve) => {
    const turn = (): void => {
      if (current > 0) turns.push(current);
      current = 0;
      if (seen >= total) resolve();
      else setImmediate(turn);
    };
    setImmediate(turn);
  });
  server.off('connection', onConnection);
  return turns;
}

function get(port: number, pathName = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: pathName, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('burstAccept', () => {
  it("accepts a queued burst several connections per turn of the loop (Node's own: one per turn)", async () => {
    const plain = await listening(net.createServer());
    queueConnections(portOf(plain), 12);
    const without = await acceptedPerTurn(plain, 12);
    expect(Math.max(...without)).toBe(1);

    const burst = await listening(net.createServer());
    const handle = await burstAccept(burst, { acceptors: 3 });
    expect(handle).toMatchObject({ acceptors: 3 });
    queueConnections(portOf(burst), 12);
    const withWatchers = await acceptedPerTurn(burst, 12);
    // Four watchers of one queue (the server's and three duplicates): four per turn, in three turns.
    expect(withWatchers).toEqual([4, 4, 4]);
  });

  it('serves HTTP on every handed-over connection; the server counts them and close() waits for them', async () => {
    const server = await listening(http.createServer((req, res) => res.end(`hello ${req.url}`)));
    await burstAccept(server, { acceptors: 4 });
    const port = portOf(server);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => get(port, `/${i}`)));
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(200));
    expect(answers.map((a) => a.body)).toEqual(Array.from({ length: 40 }, (_, i) => `hello /${i}`));

    // A connection kept open: counted by the server whichever watcher accepted it.
    const held: net.Socket[] = [];
    for (let i = 0; i < 10; i++) {
      held.push(await new Promise<net.Socket>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
      }));
    }
    await new Promise((r) => setTimeout(r, 50));
    const count = await new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    expect(count).toBe(10);

    let closed = false;
    server.close(() => (closed = true));
    servers.splice(servers.indexOf(server), 1);
    // Nothing listens any more, on any duplicate of the socket.
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect(refused).toBe('ECONNREFUSED');
    expect(closed).toBe(false);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(true);
  });

  it('keeps maxConnections over all the watchers: the connections over it are dropped, with "drop"', async () => {
    let accepted = 0;
    let dropped = 0;
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const check = (): void => {
      if (accepted + dropped === 8) settle();
    };
    const server = await listening(
      net.createServer((socket) => {
        socket.on('error', () => undefined);
        accepted++;
        check();
      }),
    );
    server.maxConnections = 3;
    server.on('drop', () => {
      dropped++;
      check();
    });
    await burstAccept(server, { acceptors: 4 });
    // Eight clients that stay connected: the first three are kept, whichever watcher accepts them.
    const clients = Array.from({ length: 8 }, () => net.connect(portOf(server), '127.0.0.1').on('error', () => undefined));
    try {
      await settled;
      expect({ accepted, dropped }).toEqual({ accepted: 3, dropped: 5 });
      const count = await new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
      expect(count).toBe(3);
    } finally {
      for (const c of clients) c.destroy();
    }
  });

  it('hands TLS connections to the TLS server: the client certificate is seen on each', async () => {
    const pki = makeTestPki();
    const server = await listening(
      https.createServer({ cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        res.end(peer.subject ? `client ${String(peer.subject.CN)}` : 'no certificate');
      }),
    );
    const { acceptors } = await burstAccept(server, { acceptors: 4 });
    expect(acceptors).toBe(4);
    const port = portOf(server);
    const ask = () =>
      new Promise<string>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, agent: false, servername: 'localhost' }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString('utf8')));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      });
    const bodies = await Promise.all(Array.from({ length: 12 }, ask));
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toMatch(/^client /);
  });

  it('is re-exported by the adapters', () => {
    expect(fromExpress).toBe(burstAccept);
  });

  it('refuses bad input and explains where it cannot help', async () => {
    const idle = net.createServer();
    await expect(burstAccept(idle)).rejects.toThrow(/not listening yet/);
    const server = await listening(net.createServer());
    await expect(burstAccept(server, { acceptors: -1 })).rejects.toThrow(RangeError);
    await expect(burstAccept(server, { acceptors: 1.5 })).rejects.toThrow(/integer from 0 to 64/);
    await expect(burstAccept(server, { acceptors: 65 })).rejects.toThrow(/integer from 0 to 64/);
    await expect(burstAccept(server, { timeoutMs: 0 })).rejects.toThrow(/timeoutMs/);
    expect(await burstAccept(server, { acceptors: 0 })).toMatchObject({ acceptors: 0 });

    const dir = mkdtempSync(path.join(tmpdir(), 'lc-burst-'));
    try {
      const pipe = net.createServer();
      servers.push(pipe);
      await new Promise<void>((resolve) => pipe.listen(path.join(dir, 'sock'), () => resolve()));
      const onPipe = await burstAccept(pipe);
      expect(onPipe).toMatchObject({ acceptors: 0, reason: expect.stringMatching(/TCP/) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() on the handle stops the extra watchers and leaves the server as it was', async () => {
    const server = await listening(http.createServer((_req, res) => res.end('ok')));
    const originalClose = server.close;
    const handle = await burstAccept(server, { acceptors: 2 });
    expect(server.close).not.toBe(originalClose);
    handle.close();
    expect(server.close).toBe(originalClose);
    queueConnections(portOf(server), 4);
    expect(Math.max(...(await acceptedPerTurn(server, 4)))).toBe(1);
    expect((await get(portOf(server))).body).toBe('ok');
  });
});
