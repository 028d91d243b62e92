import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/**
 * Node's event loop (libuv ≥ 1.45, Node ≥ 20) accepts **one** connection per turn of the loop and leaves the
 * rest in the kernel's queue for the next turn. When the loop is busy (streaming a file to fifty clients,
 * say), a burst of new clients is accepted one per turn, and the last one waits fifty turns for its first
 * byte. `burstAccept` gives the listening socket more watchers in the same loop: each one accepts one more
 * connection per turn, and hands it to the server as if the server had accepted it itself.
 *
 * The extra watchers are duplicates of the server's own descriptor, made by a short-lived helper process (a
 * handle sent over an IPC channel arrives as a new descriptor; the helper sends it straight back and exits).
 * Nothing else changes: same socket, same port, same accept queue, same `'connection'` handling (HTTP, TLS),
 * and `server.close()` stops the extra watchers too.
 */
export interface BurstAcceptOptions {
  /**
   * Extra watchers of the listening socket: up to `1 + acceptors` connections are accepted per turn of the
   * event loop. 0 turns the feature off. @default 16
   */
  acceptors?: number;
  /** How long the helper process may take, in milliseconds. @default 10000 */
  timeoutMs?: number;
}

export interface BurstAccept {
  /** Extra watchers in use: 0 when the server could not take any (see `reason`). */
  readonly acceptors: number;
  /** Why there are none, when `acceptors` is 0 and some were asked for. */
  readonly reason?: string;
  /** Stops the extra watchers (the server keeps listening). Also done by `server.close()`. */
  close(): void;
}

export const burstAcceptDefaults = { acceptors: 16, timeoutMs: 10_000 } as const;

/** The most extra watchers: beyond this, a turn of the loop spends more on empty accepts than it gains. */
export const MAX_ACCEPTORS = 64;

/** The helper: sends every handle it gets straight back (a new descriptor in the parent), then exits. */
const HELPER = `process.on('message', (m, h) => { if (h) process.send('dup', h, () => h.close()); });
process.on('disconnect', () => process.exit(0));`;

/** The parts of net.Server internals that a hand-over keeps consistent (all present since Node 0.x). */
interface ServerInternals {
  _handle?: { fd?: number } | null;
  _connections?: number;
  allowHalfOpen?: boolean;
  pauseOnConnect?: boolean;
  noDelay?: boolean;
  keepAlive?: boolean;
  keepAliveInitialDelay?: number;
}

interface SocketInternals {
  server?: net.Server | null;
  _server?: net.Server | null;
}

/**
 * Lets `server` accept up to `1 + acceptors` connections per turn of the event loop instead of one. Call it
 * once the server is listening:
 *
 * ```ts
 * const server = app.listen(8080, () => void burstAccept(server));
 * ```
 *
 * Resolves with `acceptors: 0` and a `reason`, changing nothing, where duplicates cannot help or cannot be
 * made: Windows (libuv there already posts several accepts), a cluster worker whose connections come from
 * the primary, a server listening on a pipe. `maxConnections` counts every connection, whichever watcher
 * accepted it. Rejects if the server is not listening or the helper process fails.
 */
export async function burstAccept(server: net.Server, options: BurstAcceptOptions = {}): Promise<BurstAccept> {
  const acceptors = options.acceptors ?? burstAcceptDefaults.acceptors;
  const timeoutMs = options.timeoutMs ?? burstAcceptDefaults.timeoutMs;
  if (!Number.isInteger(acceptors) || acceptors < 0 || acceptors > MAX_ACCEPTORS) {
    throw new RangeError(`burstAccept: acceptors must be an integer from 0 to ${MAX_ACCEPTORS}, got ${String(acceptors)}`);
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`burstAccept: timeoutMs must be a positive number, got ${String(timeoutMs)}`);
  }
  if (!server.listening) {
    throw new Error('burstAccept: the server is not listening yet; call it from the listen callback or after "listening"');
  }
  const none = (reason?: string): BurstAccept => ({ acceptors: 0, ...(reason ? { reason } : {}), close: () => undefined });
  if (acceptors === 0) return none();
  const unsupported = whyUnsupported(server);
  if (unsupported) return none(unsupported);

  const internals = server as unknown as ServerInternals;
  const handles = await duplicateHandle(internals._handle as object, acceptors, timeoutMs);
  if (!server.listening) {
    // Closed while the helper worked.
    for (const handle of handles) (handle as { close?: () => void }).close?.();
    throw new Error('burstAccept: the server was closed meanwhile');
  }

  const watchers: net.Server[] = [];
  const handOver = (socket: net.Socket): void => {
    // What net.Server does for a connection it accepted itself. Over `maxConnections` (counted with the
    // server's own connections), it is dropped and the server says so with 'drop'.
    const limit = server.maxConnections;
    if (limit > 0 && typeof internals._connections === 'number' && internals._connections >= limit) {
      server.emit('drop', {
        localAddress: socket.localAddress,
        localPort: socket.localPort,
        localFamily: socket.localFamily,
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        remoteFamily: socket.remoteFamily,
      });
      socket.destroy();
      return;
    }
    // Count it (so that `close()` waits for it and `getConnections()` sees it) and tie the socket to the
    // server (so that its end is counted down there).
    const socketInternals = socket as unknown as SocketInternals;
    if (typeof internals._connections === 'number') {
      internals._connections++;
      socketInternals.server = server;
      socketInternals._server = server;
    }
    server.emit('connection', socket);
  };
  for (const handle of handles) {
    const watcher = net.createServer({
      allowHalfOpen: internals.allowHalfOpen ?? false,
      pauseOnConnect: internals.pauseOnConnect ?? false,
      noDelay: internals.noDelay ?? false,
      keepAlive: internals.keepAlive ?? false,
      keepAliveInitialDelay: internals.keepAliveInitialDelay ?? 0,
    });
    watcher.on('connection', handOver);
    // An accept error (EMFILE…) on a watcher is the same as on the server: report it there.
    watcher.on('error', (err) => server.emit('error', err));
    watcher.listen(handle);
    // The server keeps the process alive; its watchers must not keep it alive on their own.
    watcher.unref();
    watchers.push(watcher);
  }

  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    server.removeListener('close', close);
    for (const watcher of watchers) watcher.close();
    if (server.close === closeAll) server.close = originalClose;
  };
  // close() must stop the watchers at once, not when the last connection ends ('close' comes only then).
  const originalClose = server.close;
  const closeAll = function (this: net.Server, callback?: (err?: Error) => void): net.Server {
    close();
    return originalClose.call(this, callback);
  };
  server.close = closeAll;
  server.once('close', close);
  return { acceptors: watchers.length, close };
}

function whyUnsupported(server: net.Server): string | undefined {
  if (process.platform === 'win32') return 'not needed on Windows (libuv accepts several connections per turn there)';
  const internals = server as unknown as ServerInternals;
  const fd = internals._handle?.fd;
  // A cluster worker's server has a stand-in handle without a descriptor: the primary accepts.
  if (typeof fd !== 'number' || fd < 0) return 'the server has no listening descriptor of its own (cluster worker?)';
  if (typeof server.address() === 'string') return 'only TCP servers are supported, not pipes';
  return undefined;
}

/** `count` new descriptors of `handle`, made by a helper process that sends each one back. */
async function duplicateHandle(handle: object, count: number, timeoutMs: number): Promise<object[]> {
  const child: ChildProcess = spawn(process.execPath, ['-e', HELPER], {
    // No inherited NODE_OPTIONS or profiling flags: the helper is a bare Node.
    env: {},
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    windowsHide: true,
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
  const received: object[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`burstAccept: the helper process did not answer within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      child.once('error', (err) => fail(new Error(`burstAccept: could not start the helper process: ${err.message}`)));
      child.once('exit', (code, signal) => {
        if (received.length < count) {
          fail(new Error(`burstAccept: the helper process exited (${signal ?? `code ${String(code)}`}) before answering${stderr ? `: ${stderr.trim()}` : ''}`));
        }
      });
      child.on('message', (_message: unknown, copy: unknown) => {
        if (!copy || typeof copy !== 'object') return;
        received.push(copy);
        if (received.length === count) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (let i = 0; i < count; i++) child.send('dup', handle as net.Server);
    });
  } catch (err) {
    for (const copy of received) (copy as { close?: () => void }).close?.();
    throw err;
  } finally {
    if (child.connected) child.disconnect();
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
  return received;
}
