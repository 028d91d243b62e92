/** Types of `server.mjs`, for TypeScript callers such as the tests. */
export declare const DEFAULT_SEED: string;

export interface DemoUpstreamOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 picks a free port. @default 8081 */
  port?: number;
  /** The same seed always makes the same bytes. @default DEFAULT_SEED */
  seed?: string;
}

export interface DemoUpstream {
  /** `http://host:port`, no trailing slash. */
  url: string;
  /** The Pulp file repository: `${url}/file/`. */
  fileRepoUrl: string;
  /** The yum repository: `${url}/yum/`. */
  yumRepoUrl: string;
  /** Requests received for a URL path (query ignored), e.g. `requests('/file/tiny-1KiB.bin')`. */
  requests(path: string): number;
  close(): Promise<void>;
}

export declare function startDemoUpstream(options?: DemoUpstreamOptions): Promise<DemoUpstream>;
