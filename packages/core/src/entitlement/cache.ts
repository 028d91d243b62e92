import Keyv from 'keyv';
import { LRUCache } from 'lru-cache';
import type { ParsedCertificate } from './certificate.js';
import type { PathTreeLimits } from './path-tree.js';
import {
  entitlementFromData,
  entitlementToData,
  readRhsmEntitlement,
  type RhsmEntitlement,
  type RhsmEntitlementData,
} from './rhsm.js';

export interface EntitlementCacheOptions {
  /** Shared store of decoded entitlements (e.g. Keyv on Redis for a cluster). @default new Keyv() (in memory) */
  store?: Keyv;
  /** Decoded entitlements kept in this process in front of the store. @default 1000 */
  entries?: number;
  /** Longest time an entry is kept, in ms; never past the certificate's notAfter anyway. @default 86400000 (1 day) */
  maxTtlMs?: number;
  /** The clock, in ms since the epoch. @default Date.now */
  now?: () => number;
  /** Bounds on the decoded path trees. */
  limits?: PathTreeLimits;
}

export const entitlementCacheDefaults = {
  entries: 1000,
  maxTtlMs: 24 * 60 * 60 * 1000,
} as const;

/** Bump when the stored shape changes, so that old entries in a shared store are ignored. */
const KEY_PREFIX = 'lazy-content:entitlement:1:';

interface Stored {
  expiresAt: number;
  entitlement: RhsmEntitlementData;
}

interface Held {
  expiresAt: number;
  entitlement: RhsmEntitlement;
}

/**
 * Decoded entitlements by certificate fingerprint (SHA-256 of the DER), so that a v3 path tree is decoded once
 * per certificate rather than once per request. An in-process LRU holds the ready matchers; the Keyv store holds
 * the JSON-able path tree (Keyv serialises values), from which the matcher is rebuilt and re-checked. No entry
 * is used or kept past the certificate's notAfter. A failing store is skipped, never fatal: the certificate is
 * decoded again.
 */
export class EntitlementCache {
  private readonly store: Keyv;
  private readonly lru: LRUCache<string, Held>;
  private readonly inflight = new Map<string, Promise<RhsmEntitlement>>();
  private readonly maxTtlMs: number;
  private readonly now: () => number;
  private readonly limits: PathTreeLimits;

  constructor(options: EntitlementCacheOptions = {}) {
    this.store = options.store ?? new Keyv();
    this.lru = new LRUCache({ max: Math.max(1, options.entries ?? entitlementCacheDefaults.entries) });
    this.maxTtlMs = options.maxTtlMs ?? entitlementCacheDefaults.maxTtlMs;
    this.now = options.now ?? Date.now;
    this.limits = options.limits ?? {};
  }

  /** The certificate's entitlement when this process holds it decoded, else undefined (then use `get`). */
  peek(certificate: ParsedCertificate): RhsmEntitlement | undefined {
    const held = this.lru.get(certificate.fingerprint);
    if (held && held.expiresAt > this.now()) return held.entitlement;
    if (held) this.lru.delete(certificate.fingerprint);
    return undefined;
  }

  /** The certificate's entitlement, from the cache or decoded now. Never rejects. */
  get(certificate: ParsedCertificate): Promise<RhsmEntitlement> {
    const key = certificate.fingerprint;
    const held = this.peek(certificate);
    if (held) return Promise.resolve(held);
    let pending = this.inflight.get(key);
    if (!pending) {
      pending = this.load(certificate).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  private async load(certificate: ParsedCertificate): Promise<RhsmEntitlement> {
    const key = KEY_PREFIX + certificate.fingerprint;
    const now = this.now();
    const expiresAt = Math.min(certificate.notAfter.getTime(), now + this.maxTtlMs);
    const stored = await this.fromStore(key, now);
    if (stored) {
      this.hold(certificate.fingerprint, stored);
      return stored.entitlement;
    }
    const entitlement = readRhsmEntitlement(certificate, this.limits);
    if (expiresAt > now) {
      this.hold(certificate.fingerprint, { expiresAt, entitlement });
      try {
        const value: Stored = { expiresAt, entitlement: entitlementToData(entitlement) };
        await this.store.set(key, value, expiresAt - now);
      } catch {
        // The shared store is an optimisation: a failure to write costs a decode elsewhere, nothing more.
      }
    }
    return entitlement;
  }

  private async fromStore(key: string, now: number): Promise<Held | undefined> {
    try {
      const value = (await this.store.get(key)) as Partial<Stored> | undefined;
      if (!value || typeof value.expiresAt !== 'number' || value.expiresAt <= now) return undefined;
      // Data from a shared store is checked like any input before it decides access.
      return { expiresAt: value.expiresAt, entitlement: entitlementFromData(value.entitlement, this.limits) };
    } catch {
      return undefined;
    }
  }

  private hold(fingerprint: string, held: Held): void {
    // Evicted in real time too (the LRU runs on its own clock), so memory is freed after notAfter.
    const ttl = Math.max(1, Math.min(held.expiresAt - this.now(), this.maxTtlMs));
    this.lru.set(fingerprint, held, { ttl });
  }
}
