/** What happens to a file of a remote after it has been streamed once. */
export type DownloadPolicy = 'on_demand' | 'streamed' | 'background' | 'immediate';
export const DOWNLOAD_POLICIES: readonly DownloadPolicy[] = ['on_demand', 'streamed', 'background', 'immediate'];

export type DigestAlgorithm = 'md5' | 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'];

/** TLS towards the upstream repository. */
export interface RemoteTls {
  /** PEM bundle of CAs that sign the upstream's certificate; Node's roots when absent. */
  ca?: string | null;
  /** PEM client certificate presented to the upstream (entitlement to an upstream CDN). */
  cert?: string | null;
  /** PEM private key of `cert`. A secret: encrypted at rest, never logged or returned. */
  key?: string | null;
  /** Verify the upstream's certificate. @default true */
  verify?: boolean;
}

/** How to reach one upstream repository, as given to `addRemote` / `updateRemote`. */
export interface RemoteInput {
  /** Unique name, e.g. `rhel-9-baseos`. */
  name: string;
  tls?: RemoteTls;
  /** HTTP(S) proxy URL, possibly with credentials (a secret). */
  proxyUrl?: string | null;
  /** Extra request headers (a secret as a whole: they may hold tokens). */
  headers?: Record<string, string> | null;
  /** Basic authentication towards the upstream; the password is a secret. */
  basicAuth?: { username: string; password: string } | null;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** Time from request sent to response headers. @default 30000 */
  headersTimeoutMs?: number;
  /** Longest pause between two body chunks before the download counts as stalled. @default 30000 */
  bodyIdleTimeoutMs?: number;
  /** Downloads from this remote at once. @default 10 */
  maxConcurrentDownloads?: number;
  /** @default 'on_demand' */
  policy?: DownloadPolicy;
}

/** A remote with every setting resolved and secrets in clear: for the streamer only, never for output. */
export interface Remote extends Required<Omit<RemoteInput, 'tls'>> {
  id: number;
  tls: Required<RemoteTls>;
  createdAt: Date;
  updatedAt: Date;
}

/** A remote as the API returns it: secrets replaced by whether they are set. */
export interface RemoteView extends Omit<Remote, 'tls' | 'proxyUrl' | 'headers' | 'basicAuth'> {
  tls: { ca: string | null; cert: string | null; key: 'set' | null; verify: boolean };
  proxyUrl: string | null;
  headers: Record<string, 'set'> | null;
  basicAuth: { username: string; password: 'set' } | null;
}

/** One source of one file: where it is upstream and what it must be. */
export interface CatalogEntry {
  id: number;
  /** The normalised request path below the content prefix (a store key), e.g. `demo/Packages/a.rpm`. */
  path: string;
  remoteId: number;
  /** Absolute upstream URL. Never shown to clients. */
  url: string;
  /** Expected size in bytes, when known. */
  size: number | null;
  digestAlgorithm: DigestAlgorithm | null;
  /** Lower-case hex. */
  digest: string | null;
  contentType: string | null;
  /** Alternate sources of one path are tried in ascending priority, then ascending id. */
  priority: number;
  savedAt: Date | null;
  /**
   * Serve fresh: a cached copy older than this (ms) is fetched again, and the file is never saved. For files
   * that change upstream under the same path, such as a repository's `repomd.xml`. Null: the file never changes.
   */
  maxAgeMs: number | null;
}

/** What `addEntries` takes for one entry. */
export interface CatalogEntryInput {
  path: string;
  /** Remote name. */
  remote: string;
  url: string;
  size?: number | null;
  digestAlgorithm?: DigestAlgorithm | null;
  digest?: string | null;
  contentType?: string | null;
  /** @default 0 */
  priority?: number;
  /** Serve fresh: see `CatalogEntry.maxAgeMs`. @default null */
  maxAgeMs?: number | null;
}
