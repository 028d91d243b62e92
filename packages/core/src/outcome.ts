import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { ErrorCode } from './errors.js';

/** What the core needs to know of a request; adapters build it from their framework's request. */
export interface ContentRequest {
  /** Upper-case HTTP method. */
  method: string;
  /** The request target as received (path and query), before any framework rewrote it for a mount point. */
  url: string;
  /** Request headers with lower-case names, as node:http gives them. */
  headers: IncomingHttpHeaders;
  /** The peer's address, when known. */
  remoteAddress?: string | undefined;
  /**
   * The client certificate of the TLS connection (DER), when the app terminates TLS itself. A function, so
   * that it is read only for paths that need it.
   */
  peerCertificate?: (() => Buffer | undefined) | undefined;
  /**
   * An object that lives as long as the connection (the socket), used only as a key for per-connection
   * memos, such as the last certificate text a trusted proxy forwarded on it.
   */
  connection?: object | undefined;
}

/** A response body the responder writes once headers are out. Exactly one of `writeTo` or `discard` is called. */
export interface ResponseBody {
  /** Writes the whole body to `res` and ends it; on failure `res` is destroyed, never ended cleanly. */
  writeTo(res: Writable): Promise<void>;
  /** Releases what the body holds (open files, fill readers) when it will not be written. */
  discard(): void;
}

/** Not ours: the adapter calls `next()`. */
export interface PassOutcome {
  kind: 'pass';
}

/** Refused: 403 with a reason in plain words. */
export interface DenyOutcome {
  kind: 'deny';
  reason: string;
}

/** A saved or cached file, with the status and headers of its conditional and range evaluation. */
export interface FileOutcome {
  kind: 'file';
  status: number;
  headers: OutgoingHttpHeaders;
  /** Absent for HEAD and 304. */
  body?: ResponseBody | undefined;
}

/** 302 to another location (the streamer). */
export interface RedirectOutcome {
  kind: 'redirect';
  location: string;
  headers?: OutgoingHttpHeaders | undefined;
}

/** Attached to a fill in progress: like `file`, but the body is still arriving from the upstream. */
export interface StreamOutcome {
  kind: 'stream';
  status: number;
  headers: OutgoingHttpHeaders;
  body?: ResponseBody | undefined;
}

/** A failure with its status; `message` is safe to show to a client. */
export interface ErrorOutcome {
  kind: 'error';
  status: number;
  code: ErrorCode;
  message: string;
  headers?: Record<string, string> | undefined;
}

export type Outcome = PassOutcome | DenyOutcome | FileOutcome | RedirectOutcome | StreamOutcome | ErrorOutcome;

/** An outcome the responder writes: everything but `pass`. */
export type ResponseOutcome = Exclude<Outcome, PassOutcome>;

export const PASS: PassOutcome = Object.freeze({ kind: 'pass' });
