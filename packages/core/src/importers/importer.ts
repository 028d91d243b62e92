import type { CatalogEntryInput } from '../catalog/types.js';
import type { MetadataClient } from './metadata-client.js';

/** What an importer knows of the import it serves. */
export interface ImporterContext {
  /** The repository's base URL, ending with `/`. */
  baseUrl: string;
  /** Key prefix of every path it yields: `''` or segments ending with `/`, e.g. `demo-file/`. */
  prefix: string;
  /** Name of the remote that every entry names. */
  remote: string;
  /** Downloads with the remote's settings (TLS, proxy, headers, timeouts). */
  client: MetadataClient;
  /** Age after which metadata that changes in place (`repomd.xml`) is fetched again: its entries' `maxAgeMs`. */
  maxAgeMs: number;
  /** Tells the progress callback what is being read, and how many entries the import will have when known. */
  report(detail: { file?: string; expected?: number | null }): void;
}

/**
 * Reads one kind of upstream repository from its own metadata. `read` yields one entry per file, its own
 * metadata included; its paths are the prefix joined to the path relative to the base URL (build them with
 * `entryPath`). Bad metadata rejects with a `LazyContentError` whose message says which file and where; the
 * import then writes nothing.
 */
export interface Importer {
  /** What `importRepository({ type })` calls it, e.g. `yum`. */
  readonly type: string;
  read(context: ImporterContext): AsyncIterable<CatalogEntryInput>;
}
