import { readDerOctetString, readDerString } from './asn1.js';
import type { ParsedCertificate } from './certificate.js';
import { decodePathTree, PathTree, PathTreeError, type PathTreeData, type PathTreeLimits } from './path-tree.js';

/** Red Hat's private OID arc for entitlement certificates. */
export const RHSM_OID = '1.3.6.1.4.1.2312.9';
/** Certificate format version, a UTF8String such as "3.4"; absent in v1 certificates. */
export const RHSM_VERSION_OID = `${RHSM_OID}.6`;
/** v3: the compressed path tree (an OCTET STRING). */
export const RHSM_PATH_TREE_OID = `${RHSM_OID}.7`;
/** v1: `…9.2.<content id>.1.6` holds one content download path (a UTF8String). */
const V1_DOWNLOAD_PATH = /^1\.3\.6\.1\.4\.1\.2312\.9\.2\.\d+\.1\.6$/;

/** The entitlement read from a certificate, in the JSON-able form the cache stores. */
export type RhsmEntitlementData =
  | { kind: 'paths'; version: 1 | 3; tree: PathTreeData }
  /** The certificate carries no Red Hat entitlement (a plain client certificate). */
  | { kind: 'none' }
  /** The entitlement extensions are there but cannot be read; `detail` is for logs only. */
  | { kind: 'unreadable'; detail: string };

export type RhsmEntitlement =
  | { kind: 'paths'; version: 1 | 3; tree: PathTree }
  | { kind: 'none' }
  | { kind: 'unreadable'; detail: string };

/**
 * Reads the entitled paths of a Red Hat entitlement certificate: v3 and later (version extension major ≥ 3)
 * from the path tree, v1 from the download-path extensions. Never throws.
 */
export function readRhsmEntitlement(certificate: ParsedCertificate, limits: PathTreeLimits = {}): RhsmEntitlement {
  try {
    const versionExt = certificate.extensions.get(RHSM_VERSION_OID);
    if (versionExt) {
      const version = readDerString(versionExt.value);
      const major = /^(\d{1,6})(\.\d{1,6})*$/.exec(version.trim())?.[1];
      if (major === undefined) return { kind: 'unreadable', detail: 'malformed version' };
      if (Number(major) >= 3) {
        const ext = certificate.extensions.get(RHSM_PATH_TREE_OID);
        if (!ext) return { kind: 'none' };
        return { kind: 'paths', version: 3, tree: decodePathTree(readDerOctetString(ext.value), limits) };
      }
    }
    const paths: string[] = [];
    for (const [oid, ext] of certificate.extensions) {
      if (V1_DOWNLOAD_PATH.test(oid)) paths.push(readDerString(ext.value));
    }
    if (!paths.some((p) => p.split('/').some((s) => s !== ''))) return { kind: 'none' };
    return { kind: 'paths', version: 1, tree: PathTree.fromPaths(paths, limits) };
  } catch (err) {
    const detail = err instanceof PathTreeError ? err.message : 'malformed entitlement extension';
    return { kind: 'unreadable', detail };
  }
}

export function entitlementToData(entitlement: RhsmEntitlement): RhsmEntitlementData {
  return entitlement.kind === 'paths'
    ? { kind: 'paths', version: entitlement.version, tree: entitlement.tree.data }
    : entitlement;
}

/** Rebuilds an entitlement from cached data; throws a PathTreeError when the data is not well formed. */
export function entitlementFromData(data: unknown, limits: PathTreeLimits = {}): RhsmEntitlement {
  const d = data as Partial<{ kind: string; version: number; tree: unknown; detail: unknown }> | null;
  if (d?.kind === 'none') return { kind: 'none' };
  if (d?.kind === 'unreadable') return { kind: 'unreadable', detail: typeof d.detail === 'string' ? d.detail : '' };
  if (d?.kind === 'paths' && (d.version === 1 || d.version === 3)) {
    return { kind: 'paths', version: d.version, tree: PathTree.fromData(d.tree, limits) };
  }
  throw new PathTreeError('malformed cached entitlement');
}

/**
 * Whether an entitlement allows `path` (the path below the content prefix). The `listing` rule applies to v3
 * path trees only, as in python-rhsm; v1 paths are matched segment by segment with `$variables`.
 */
export function entitles(entitlement: RhsmEntitlement, path: string): boolean {
  return entitlement.kind === 'paths' && entitlement.tree.matches(path, { listing: entitlement.version === 3 });
}
