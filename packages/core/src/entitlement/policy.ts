import { EntitlementCache } from './cache.js';
import type { ParsedCertificate } from './certificate.js';
import { entitles, type RhsmEntitlement } from './rhsm.js';
import { allow, deny, type Verdict } from './verdict.js';

/**
 * Decides whether a certificate gives access to a path. The guard calls it only for a certificate that is
 * already trusted and within its validity dates; `path` is the request path below the content prefix,
 * starting with `/`. A policy should not throw; the guard turns a throw into a `policy-error` refusal anyway.
 */
export interface EntitlementPolicy {
  check(certificate: ParsedCertificate, path: string): Verdict | Promise<Verdict>;
}

/** A yes/no decision of the application; only `true` allows. */
export type EntitlementCallback = (certificate: ParsedCertificate, path: string) => boolean | Promise<boolean>;

/** Red Hat entitlement certificates (v1 download paths, v3 path trees). */
export function rhsmPolicy(options: { cache?: EntitlementCache } = {}): EntitlementPolicy {
  const cache = options.cache ?? new EntitlementCache();
  const decide = (entitlement: RhsmEntitlement, path: string): Verdict => {
    if (entitlement.kind === 'unreadable') return deny('bad-entitlement', entitlement.detail);
    if (entitlement.kind === 'none') return deny('not-entitled', 'the certificate carries no entitlement');
    return entitles(entitlement, path) ? allow() : deny('not-entitled');
  };
  return {
    // Synchronous when the entitlement is already decoded in this process (the common case).
    check(certificate, path) {
      const held = cache.peek(certificate);
      return held ? decide(held, path) : cache.get(certificate).then((entitlement) => decide(entitlement, path));
    },
  };
}

/** Trust only: any path is allowed to a certificate that verifies to the CA. */
export function x509Policy(): EntitlementPolicy {
  return { check: () => allow() };
}

export interface CallbackPolicyOptions {
  /** How long the callback may take before the request is refused, in ms. @default 5000 */
  timeoutMs?: number;
}

/** The application decides. A throw, a rejection or a timeout is a `policy-error` refusal, never a crash. */
export function callbackPolicy(callback: EntitlementCallback, options: CallbackPolicyOptions = {}): EntitlementPolicy {
  const timeoutMs = options.timeoutMs ?? 5000;
  return {
    async check(certificate, path) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const timeout = new Promise<typeof TIMEOUT>((resolve) => {
          timer = setTimeout(() => resolve(TIMEOUT), timeoutMs);
        });
        const result = await Promise.race([Promise.resolve().then(() => callback(certificate, path)), timeout]);
        if (result === TIMEOUT) return deny('policy-error', `the entitlement callback took longer than ${timeoutMs} ms`);
        return result === true ? allow() : deny('not-entitled');
      } catch (err) {
        return deny('policy-error', `the entitlement callback failed: ${describeError(err)}`);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

const TIMEOUT = Symbol('timeout');

/** A thrown value as text for the log; even a value whose toString throws must not escape. */
export function describeError(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return 'unprintable error';
  }
}
