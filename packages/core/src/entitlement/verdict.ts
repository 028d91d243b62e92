import { LazyContentError } from '../errors.js';

/**
 * Why a client was refused. Each reason has one fixed message for the client (see `denyMessages`): plain
 * words that reveal nothing internal (no CA names, file paths, OIDs or stack traces).
 */
export type DenyReason =
  | 'no-certificate'
  | 'unreadable'
  | 'untrusted'
  | 'expired'
  | 'not-yet-valid'
  | 'not-entitled'
  | 'bad-entitlement'
  | 'policy-error';

export const denyMessages = {
  'no-certificate': 'no client certificate',
  unreadable: 'client certificate could not be read',
  untrusted: 'client certificate is not trusted',
  expired: 'client certificate has expired',
  'not-yet-valid': 'client certificate is not yet valid',
  'not-entitled': 'client certificate does not entitle access to this path',
  'bad-entitlement': 'client certificate entitlement data could not be read',
  'policy-error': 'client certificate could not be checked',
} as const satisfies Record<DenyReason, string>;

export interface Allowed {
  allowed: true;
}

export interface Denied {
  allowed: false;
  reason: DenyReason;
  /** The text for the client (the 403 body); always `denyMessages[reason]`. */
  message: string;
  /** What went wrong in more detail, for the operator's log only: never send it to the client. */
  detail?: string;
}

export type Verdict = Allowed | Denied;

const ALLOWED: Allowed = Object.freeze({ allowed: true });

export function allow(): Allowed {
  return ALLOWED;
}

export function deny(reason: DenyReason, detail?: string): Denied {
  return detail === undefined
    ? { allowed: false, reason, message: denyMessages[reason] }
    : { allowed: false, reason, message: denyMessages[reason], detail };
}

/** The 403 error for a refusal, for code that reports failures as a LazyContentError. */
export function deniedError(verdict: Denied): LazyContentError {
  return new LazyContentError('FORBIDDEN', verdict.message);
}
