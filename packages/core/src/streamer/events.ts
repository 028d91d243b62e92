import type { CacheRecord } from '../cache/disk-cache.js';
import type { ErrorCode } from '../errors.js';
import type { SourceFailureReason } from './upstream.js';

/** Why a fill failed as a whole. */
export type FillFailureReason =
  /** No source answered with a 2xx before failing (see the `source:failed` events for each one). */
  | 'no_source'
  | 'body_timeout'
  | 'body_cut'
  | 'size_mismatch'
  | 'digest_mismatch'
  /** Writing the temp file failed (disk full, I/O error). */
  | 'disk'
  /** The download was verified and every reader served, but moving it into the cache failed. */
  | 'cache_write'
  /** `FillEngine.close()` or `Fill.abort()`. */
  | 'aborted';

export interface FillStartedEvent {
  key: string;
  /** Sources the fill may try. */
  sources: number;
}

export interface FillJoinedEvent {
  key: string;
  /** Bytes already on disk when the request joined. */
  bytesWritten: number;
  readers: number;
}

export interface FillHeadEvent {
  key: string;
  entryId: number;
  remoteId: number;
  size: number | null;
}

export interface FillCompletedEvent {
  key: string;
  /** The index record written for the file: what the save queue needs. */
  record: CacheRecord;
  entryId: number;
  remoteId: number;
  durationMs: number;
}

export interface FillFailedEvent {
  key: string;
  reason: FillFailureReason;
  /** The code readers and the head were failed with. */
  code: ErrorCode;
  /** The source that was downloading, when one had answered. */
  entryId: number | null;
  remoteId: number | null;
  bytesWritten: number;
}

export interface SourceFailedEvent {
  key: string;
  entryId: number;
  remoteId: number;
  reason: SourceFailureReason;
  /** The upstream's status, for `reason: 'status'`. */
  status?: number | undefined;
  /** Whether it failed before answering (so the next source is tried) or mid-body (the fill fails). */
  phase: 'head' | 'body';
}

export interface SourceCooledDownEvent {
  entryId: number;
  remoteId: number;
  /** End of the cooldown, ms since the epoch. */
  until: number;
}

/** Events of the fill engine, for logs and metrics. */
export interface FillEngineEvents {
  'fill:started': [event: FillStartedEvent];
  /** A request attached to a fill that was already running (coalesced). */
  'fill:joined': [event: FillJoinedEvent];
  /** A source answered with a 2xx: the fill's `head` resolved. */
  'fill:head': [event: FillHeadEvent];
  /** The file is verified and in the cache: ready to be saved. */
  'fill:completed': [event: FillCompletedEvent];
  'fill:failed': [event: FillFailedEvent];
  'source:failed': [event: SourceFailedEvent];
  'source:cooled-down': [event: SourceCooledDownEvent];
}

export type EmitFillEvent = <K extends keyof FillEngineEvents>(name: K, ...args: FillEngineEvents[K]) => void;
