/**
 * The one error type of lazy-content. Every failure the core can meet is one of these codes, and each code
 * has exactly one HTTP status, so that the three adapters can never disagree about what a client sees.
 */
export const errorStatus = {
  BAD_PATH: 400,
  INVALID_INPUT: 400,
  FORBIDDEN: 403,
  BAD_SIGNATURE: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PRECONDITION_FAILED: 412,
  RANGE_NOT_SATISFIABLE: 416,
  INTERNAL: 500,
  UPSTREAM_FAILED: 502,
  UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof errorStatus;

/** HTTP status for an error code. */
export function statusForCode(code: ErrorCode): number {
  return errorStatus[code];
}

export interface LazyContentErrorOptions {
  cause?: unknown;
  /** Extra response headers, e.g. `Allow` for 405 or `Retry-After` for 503. */
  headers?: Record<string, string>;
}

export class LazyContentError extends Error {
  override readonly name = 'LazyContentError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;

  /** `message` is shown to the client: keep it short and free of internal paths, URLs and credentials. */
  constructor(code: ErrorCode, message: string, options: LazyContentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = errorStatus[code];
    this.headers = options.headers ?? {};
  }

  /** Wraps anything thrown into a LazyContentError; unknown failures become INTERNAL with a generic message. */
  static fromUnknown(err: unknown): LazyContentError {
    if (err instanceof LazyContentError) return err;
    return new LazyContentError('INTERNAL', 'Internal error', { cause: err });
  }
}

export function isLazyContentError(err: unknown): err is LazyContentError {
  return err instanceof LazyContentError;
}
