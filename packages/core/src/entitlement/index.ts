export {
  EntitlementGuard,
  entitlementGuardDefaults,
  type CheckOptions,
  type EntitlementGuardOptions,
  type EntitlementRule,
  type Protection,
} from './guard.js';
export {
  callbackPolicy,
  rhsmPolicy,
  x509Policy,
  type CallbackPolicyOptions,
  type EntitlementCallback,
  type EntitlementPolicy,
} from './policy.js';
export { allow, deniedError, deny, denyMessages, type Allowed, type Denied, type DenyReason, type Verdict } from './verdict.js';
export {
  CertificateReadError,
  certificateDefaults,
  certificateDer,
  isParsedCertificate,
  parseCertificate,
  readCertificate,
  type CertificateExtension,
  type CertificateInput,
  type CertificateLimits,
  type ParsedCertificate,
  type ReadResult,
} from './certificate.js';
export { CaBundleError, TrustStore } from './trust.js';
export { EntitlementCache, entitlementCacheDefaults, type EntitlementCacheOptions } from './cache.js';
export {
  decodePathTree,
  PathTree,
  PathTreeError,
  pathTreeDefaults,
  type PathTreeData,
  type PathTreeLimits,
} from './path-tree.js';
export {
  entitles,
  readRhsmEntitlement,
  RHSM_PATH_TREE_OID,
  RHSM_VERSION_OID,
  type RhsmEntitlement,
  type RhsmEntitlementData,
} from './rhsm.js';
