import { createHash } from 'node:crypto';
import type Keyv from 'keyv';
import { LRUCache } from 'lru-cache';
import { OptionsError } from '../options.js';
import { EntitlementCache, entitlementCacheDefaults } from './cache.js';
import {
  CertificateReadError,
  certificateDefaults,
  certificateDer,
  isParsedCertificate,
  parseCertificate,
  type CertificateInput,
  type ParsedCertificate,
} from './certificate.js';
import type { PathTreeLimits } from './path-tree.js';
import { callbackPolicy, describeError, rhsmPolicy, x509Policy, type EntitlementCallback, type EntitlementPolicy } from './policy.js';
import { CaBundleError, TrustStore } from './trust.js';
import { allow, deny, type Verdict } from './verdict.js';

export interface EntitlementRule {
  /**
   * Path prefix below the content prefix, starting with `/`, e.g. `/Default_Organization/`. It matches whole
   * segments (`/a/b` covers `/a/b` and `/a/b/c`, not `/a/bc`), case-sensitively; `/` covers everything.
   */
  prefix: string;
  /** PEM text of the CA certificate(s) that must have signed the client certificate; several bundles allowed. */
  ca: string | string[];
  /**
   * `'rhsm'`: Red Hat entitlement certificates (v1/v3) decide which paths; `'x509'`: any path for a trusted
   * certificate; a callback `(certificate, path) => boolean | Promise<boolean>`; or an EntitlementPolicy.
   */
  policy: 'rhsm' | 'x509' | EntitlementCallback | EntitlementPolicy;
}

export interface EntitlementGuardOptions {
  /** Which paths need which certificates. Paths under no rule are open; the longest matching prefix wins. */
  rules: EntitlementRule[];
  /** Shared store of decoded entitlements (Keyv on Redis for a cluster). @default new Keyv() (in memory) */
  store?: Keyv;
  /** Certificates, trust results and entitlements kept in this process, each. @default 1000 */
  cacheEntries?: number;
  /** Longest time a decoded entitlement is kept, in ms; never past the certificate's notAfter. @default 86400000 (1 day) */
  cacheMaxTtlMs?: number;
  /** How long a callback policy may take before the request is refused, in ms. @default 5000 */
  callbackTimeoutMs?: number;
  /** Largest client certificate accepted, in DER bytes. @default 262144 (256 KiB) */
  maxCertificateBytes?: number;
  /** Bounds on decoding v3 path trees. @default see `pathTreeDefaults` */
  pathTreeLimits?: PathTreeLimits;
  /** The clock, in ms since the epoch, for validity dates and cache expiry. @default Date.now */
  now?: () => number;
}

export const entitlementGuardDefaults = {
  cacheEntries: entitlementCacheDefaults.entries,
  cacheMaxTtlMs: entitlementCacheDefaults.maxTtlMs,
  callbackTimeoutMs: 5000,
  maxCertificateBytes: certificateDefaults.maxCertificateBytes,
} as const;

export interface CheckOptions {
  /**
   * The connection the request came on (any object that lives as long as it, such as the socket). A forwarded
   * certificate text equal to the connection's previous one is then recognised without being hashed again.
   */
  connection?: object | undefined;
}

/** Which rule covers a path: from `protectionOf`, for `checkProtected`. */
export interface Protection {
  /** The prefix of the rule. */
  readonly prefix: string;
}

interface InternalProtection extends Protection {
  /** The normalised path, or null when it climbs above the root. */
  readonly path: string | null;
  readonly rule: CompiledRule | undefined;
}

interface CompiledRule {
  prefix: string;
  /** `prefix` and a slash: what a path strictly below the prefix starts with. */
  below: string;
  segments: string[];
  trust: TrustStore;
  policy: EntitlementPolicy;
}

/**
 * Access control by client certificate, per path prefix. `check(path, certificate)` takes the request path
 * *below the content prefix*, decoded and normalised (with the content prefix `/content/`, the URL
 * `/content/Default_Organization/Library/x.rpm` is checked as `/Default_Organization/Library/x.rpm`, which is
 * what Red Hat entitlements list). A path under a rule needs a certificate signed by the rule's CA, within
 * its validity dates, and passing the rule's policy. `check` never throws or rejects.
 */
export class EntitlementGuard {
  private readonly rules: CompiledRule[];
  private readonly certificates: LRUCache<string, ParsedCertificate>;
  /**
   * Certificates by the exact text a proxy forwarded, so that a client sending the same header on every
   * request costs one map lookup instead of URL-decoding, base64-decoding and hashing it each time.
   */
  private readonly byText: LRUCache<string, ParsedCertificate>;
  /** Certificates by DER buffer object (a TLS connection hands the same buffer to each of its requests). */
  private readonly byBuffer = new WeakMap<Uint8Array, ParsedCertificate>();
  /** The last forwarded certificate text of each connection and what it was (a proxy connection is reused). */
  private readonly byConnection = new WeakMap<object, { text: string; certificate: ParsedCertificate }>();
  private readonly now: () => number;
  private readonly maxCertificateBytes: number;

  /** Validates the options; throws an OptionsError naming the option at fault. */
  constructor(options: EntitlementGuardOptions) {
    if (typeof options !== 'object' || options === null || !Array.isArray(options.rules)) {
      throw new OptionsError('entitlement.rules: must be an array of { prefix, ca, policy }');
    }
    const o = { ...entitlementGuardDefaults, ...stripUndefined(options) };
    for (const name of ['cacheEntries', 'cacheMaxTtlMs', 'callbackTimeoutMs', 'maxCertificateBytes'] as const) {
      if (!Number.isInteger(o[name]) || o[name] < 1) throw new OptionsError(`entitlement.${name}: must be a whole number of at least 1`);
    }
    if (options.store !== undefined && (typeof options.store?.get !== 'function' || typeof options.store?.set !== 'function')) {
      throw new OptionsError('entitlement.store: must be a Keyv instance, e.g. new Keyv(new KeyvRedis(url))');
    }
    for (const [name, value] of Object.entries(options.pathTreeLimits ?? {})) {
      if (value !== undefined && (!Number.isInteger(value) || (value as number) < 1)) {
        throw new OptionsError(`entitlement.pathTreeLimits.${name}: must be a whole number of at least 1`);
      }
    }
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new OptionsError('entitlement.now: must be a function returning ms since the epoch');
    }
    this.now = options.now ?? Date.now;
    this.maxCertificateBytes = o.maxCertificateBytes;
    this.certificates = new LRUCache({ max: o.cacheEntries });
    this.byText = new LRUCache({ max: o.cacheEntries });

    const cache = new EntitlementCache({
      store: options.store,
      entries: o.cacheEntries,
      maxTtlMs: o.cacheMaxTtlMs,
      now: this.now,
      limits: options.pathTreeLimits,
    });
    const rhsm = rhsmPolicy({ cache });
    const x509 = x509Policy();
    const stores = new Map<string, TrustStore>();
    const seen = new Set<string>();

    this.rules = options.rules.map((rule, i) => {
      const name = `entitlement.rules[${i}]`;
      if (typeof rule !== 'object' || rule === null) throw new OptionsError(`${name}: must be an object { prefix, ca, policy }`);
      if (typeof rule.prefix !== 'string' || !rule.prefix.startsWith('/')) {
        throw new OptionsError(`${name}.prefix: must be a path starting with "/", below the content prefix, such as "/Default_Organization/"`);
      }
      const segments = rule.prefix.split('/').filter((s) => s !== '');
      if (segments.some((s) => s === '.' || s === '..')) throw new OptionsError(`${name}.prefix: must not contain "." or ".." segments`);
      const key = `/${segments.join('/')}`;
      if (seen.has(key)) throw new OptionsError(`${name}.prefix: another rule has the same prefix "${key}"`);
      seen.add(key);

      const bundles = typeof rule.ca === 'string' ? [rule.ca] : rule.ca;
      if (!Array.isArray(bundles) || bundles.length === 0 || bundles.some((b) => typeof b !== 'string')) {
        throw new OptionsError(`${name}.ca: must be the PEM text of the CA certificate(s), a string or an array of strings`);
      }
      const bundleKey = createHash('sha256').update(JSON.stringify(bundles)).digest('hex');
      let trust = stores.get(bundleKey);
      if (!trust) {
        try {
          trust = TrustStore.fromPem(bundles, { cacheEntries: o.cacheEntries });
        } catch (err) {
          if (err instanceof CaBundleError) throw new OptionsError(`${name}.ca: ${err.message}`);
          throw err;
        }
        stores.set(bundleKey, trust);
      }

      let policy: EntitlementPolicy;
      if (rule.policy === 'rhsm') policy = rhsm;
      else if (rule.policy === 'x509') policy = x509;
      else if (typeof rule.policy === 'function') policy = callbackPolicy(rule.policy, { timeoutMs: o.callbackTimeoutMs });
      else if (typeof rule.policy === 'object' && rule.policy !== null && typeof rule.policy.check === 'function') policy = rule.policy;
      else throw new OptionsError(`${name}.policy: must be 'rhsm', 'x509', a function (certificate, path) => boolean, or an object with check()`);

      return { prefix: key, below: `${key}/`, segments, trust, policy };
    });
    // Longest prefix first, so that the first match is the most specific rule.
    this.rules.sort((a, b) => b.segments.length - a.segments.length);
  }

  /** The prefix of the rule that covers `path`, or undefined when the path is open. */
  ruleFor(path: string): string | undefined {
    const protection = this.protectionOf(path) as InternalProtection | undefined;
    return protection?.rule?.prefix;
  }

  /**
   * The rule that covers `path` with the path's normalised form, or undefined when the path is open; hand it to
   * `checkProtected`. A path that climbs above the root with `..` is protected by nothing it could reach, and
   * is refused by `checkProtected`. (`check` is these two steps in one.)
   */
  protectionOf(path: string): Protection | undefined {
    let protection: InternalProtection | undefined;
    if (NORMAL_PATH.test(path)) {
      // Already normal (what the middleware hands over): rules match by string prefix, nothing is split.
      const rule = this.rules.find((r) => r.prefix === '/' || path === r.prefix || path.startsWith(r.below));
      if (rule) protection = { prefix: rule.prefix, path, rule };
      return protection;
    }
    const segments = normaliseSegments(path);
    if (!segments) {
      protection = { prefix: '/', path: null, rule: undefined };
    } else {
      const rule = this.match(segments);
      if (rule) protection = { prefix: rule.prefix, path: `/${segments.join('/')}`, rule };
    }
    return protection;
  }

  /**
   * Whether `certificate` may fetch `path` (below the content prefix). An open path is allowed without looking
   * at the certificate. A path that climbs above the root with `..` is refused.
   */
  async check(path: string, certificate: CertificateInput, options?: CheckOptions): Promise<Verdict> {
    const protection = this.protectionOf(path);
    return protection ? await this.checkProtected(protection, certificate, options) : allow();
  }

  /**
   * `check` for a path whose protection is known. Synchronous when everything it needs is cached (then no
   * promise is made); never throws or rejects.
   */
  checkProtected(protection: Protection, certificate: CertificateInput, options?: CheckOptions): Verdict | Promise<Verdict> {
    try {
      const { rule, path } = protection as InternalProtection;
      if (path === null || rule === undefined) return deny('not-entitled', 'the path climbs above the root');
      const read = this.read(certificate, options?.connection);
      if (!read.ok) return deny(read.kind === 'none' ? 'no-certificate' : 'unreadable', read.detail);
      const trusted = rule.trust.verify(read.certificate, this.now());
      if (!trusted.allowed) return trusted;
      const verdict = rule.policy.check(read.certificate, path);
      return isPromise(verdict) ? Promise.resolve(verdict).catch((err: unknown) => deny('policy-error', describeError(err))) : verdict;
    } catch (err) {
      return deny('policy-error', describeError(err));
    }
  }

  private match(segments: string[]): CompiledRule | undefined {
    return this.rules.find((rule) => rule.segments.every((s, i) => segments[i] === s));
  }

  private read(
    input: CertificateInput,
    connection: object | undefined,
  ): { ok: true; certificate: ParsedCertificate } | { ok: false; kind: 'none' | 'unreadable'; detail: string } {
    if (input === null || input === undefined) return { ok: false, kind: 'none', detail: 'no certificate' };
    if (isParsedCertificate(input)) return { ok: true, certificate: input };
    // The same text as the last request of this connection: one string comparison, no hashing.
    const last = typeof input === 'string' && connection !== undefined ? this.byConnection.get(connection) : undefined;
    if (last !== undefined && last.text === input) return { ok: true, certificate: last.certificate };
    const certificate = this.readInput(input);
    if (certificate.ok && typeof input === 'string' && connection !== undefined) {
      this.byConnection.set(connection, { text: input, certificate: certificate.certificate });
    }
    return certificate;
  }

  private readInput(input: string | Uint8Array): { ok: true; certificate: ParsedCertificate } | { ok: false; kind: 'none' | 'unreadable'; detail: string } {
    // A buffer is remembered by identity but its bytes are compared too (a caller may reuse a buffer).
    const known = typeof input === 'string' ? this.byText.get(input) : this.byBuffer.get(input);
    if (known && (typeof input === 'string' || known.der.equals(input))) return { ok: true, certificate: known };
    try {
      const der = certificateDer(input, { maxCertificateBytes: this.maxCertificateBytes });
      const fingerprint = createHash('sha256').update(der).digest('hex');
      let certificate = this.certificates.get(fingerprint);
      if (!certificate) {
        certificate = parseCertificate(der);
        this.certificates.set(fingerprint, certificate);
      }
      // Only certificates that parsed are remembered by their text: garbage is not worth keeping.
      if (typeof input === 'string') this.byText.set(input, certificate);
      else this.byBuffer.set(input, certificate);
      return { ok: true, certificate };
    } catch (err) {
      if (err instanceof CertificateReadError) return { ok: false, kind: err.kind, detail: err.message };
      return { ok: false, kind: 'unreadable', detail: 'unexpected error while reading the certificate' };
    }
  }
}

/** `/` followed by segments, none of them empty, `.` or `..`, and no trailing slash (or just `/`). */
const NORMAL_PATH = /^(?:\/(?!\.\.?(?:\/|$))[^/]+)+$|^\/$/;

/** Segments of a path with empty and `.` segments dropped and `..` resolved; null when `..` climbs above the root. */
function normaliseSegments(path: string): string[] | null {
  const out: string[] = [];
  for (const segment of String(path).split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) return null;
      out.pop();
    } else {
      out.push(segment);
    }
  }
  return out;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
