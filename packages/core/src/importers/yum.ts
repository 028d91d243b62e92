import { createHash } from 'node:crypto';
import { TextDecoder } from 'node:util';
import { SaxesParser, type SaxesTagPlain } from 'saxes';
import type { CatalogEntryInput, DigestAlgorithm } from '../catalog/types.js';
import { LazyContentError } from '../errors.js';
import { decompress } from './decompress.js';
import type { Importer, ImporterContext } from './importer.js';
import { BadRepositoryPath, directoryUrl, entryPath, hrefRelativeKey, hrefUrl, upstreamError } from './paths.js';

export const REPOMD = 'repodata/repomd.xml';
/** Files at the base of a distribution tree or a CDN folder, imported when present. */
const OPTIONAL_FILES = ['.treeinfo', 'listing'];

/** Checksum types of yum metadata; `sha` is what old createrepo wrote for SHA-1. */
const CHECKSUM_TYPES: Record<string, DigestAlgorithm> = {
  md5: 'md5',
  sha: 'sha1',
  sha1: 'sha1',
  sha224: 'sha224',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
};
const HEX_LENGTH: Record<DigestAlgorithm, number> = { md5: 32, sha1: 40, sha224: 56, sha256: 64, sha384: 96, sha512: 128 };

interface Location {
  href: string;
  /** `xml:base`: where the file is when not below the repository's base URL. */
  base: string | null;
}

interface Checksum {
  algorithm: DigestAlgorithm;
  digest: string;
}

/** One `data` element of repomd.xml. */
interface MetadataFile {
  type: string;
  location: Location;
  checksum: Checksum;
  size: number | null;
}

/** A checksum element's type and text, checked: a known algorithm and as many hex digits as it makes. */
function checksumOf(type: string | undefined, text: string, what: string): Checksum {
  const algorithm = type === undefined ? undefined : CHECKSUM_TYPES[type.toLowerCase()];
  if (algorithm === undefined) throw new BadRepositoryPath(`${what} has ${type === undefined ? 'no checksum type' : `checksum type "${type}", which is not supported`}`);
  const digest = text.trim().toLowerCase();
  if (!/^[0-9a-f]+$/.test(digest) || digest.length !== HEX_LENGTH[algorithm]) {
    throw new BadRepositoryPath(`${what} has a ${algorithm} checksum ${JSON.stringify(text.trim())} that is not ${HEX_LENGTH[algorithm]} hexadecimal digits`);
  }
  return { algorithm, digest };
}

function sizeOf(text: string | undefined, what: string): number | null {
  if (text === undefined) return null;
  const size = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(size)) throw new BadRepositoryPath(`${what} has a size ${JSON.stringify(text)} that is not a whole number of bytes`);
  return size;
}

/** The catalog entry of a file that yum metadata lists by location (below the base, or below its `xml:base`). */
function locatedEntry(ctx: ImporterContext, location: Location, checksum: Checksum, size: number | null): CatalogEntryInput {
  const key = hrefRelativeKey(location.href);
  const base = location.base === null ? ctx.baseUrl : directoryUrl(location.base, ctx.baseUrl);
  return {
    path: entryPath(ctx.prefix, key),
    remote: ctx.remote,
    url: hrefUrl(location.href, base),
    size,
    digestAlgorithm: checksum.algorithm,
    digest: checksum.digest,
  };
}

/**
 * Walks XML given in pieces with saxes, an event parser: what it holds is the current element's path, never the
 * document. Element names are as written (createrepo's `primary` and `repomd` use default namespaces).
 */
class XmlWalker {
  readonly parser = new SaxesParser<{ xmlns: false; position: true }>({ xmlns: false, position: true });
  /** Names of the open elements, root first. */
  readonly open: string[] = [];
  private decoder = new TextDecoder('utf-8', { fatal: true });
  /**
   * What a handler refused, thrown once saxes is done with the chunk: saxes closes the open elements of a
   * mismatched end tag before it reports it, and the XML error is the one worth telling.
   */
  private refusal: { error: unknown; line: number } | null = null;

  constructor(
    private readonly file: string,
    handlers: {
      opentag(tag: SaxesTagPlain, depth: number): void;
      closetag(name: string, depth: number): void;
      text(text: string): void;
    },
  ) {
    const guarded = (step: () => void) => {
      if (this.refusal) return;
      try {
        step();
      } catch (error) {
        this.refusal = { error, line: this.line };
      }
    };
    this.parser.on('opentag', (tag) => {
      this.open.push(tag.name);
      guarded(() => handlers.opentag(tag, this.open.length));
    });
    this.parser.on('closetag', (tag) => {
      guarded(() => handlers.closetag(tag.name, this.open.length));
      this.open.pop();
    });
    this.parser.on('text', (text) => guarded(() => handlers.text(text)));
    this.parser.on('cdata', (text) => guarded(() => handlers.text(text)));
  }

  get line(): number {
    return this.parser.line;
  }

  write(bytes: Uint8Array): void {
    this.run(() => this.parser.write(this.decoder.decode(bytes, { stream: true })));
  }

  close(): void {
    this.run(() => this.parser.write(this.decoder.decode()).close());
  }

  private run(step: () => void): void {
    try {
      step();
    } catch (err) {
      if (err instanceof TypeError) throw upstreamError(`${this.file} is not valid UTF-8 text`, err);
      throw upstreamError(`${this.file} is not well-formed XML: ${(err as Error).message}`, err);
    }
    if (this.refusal) {
      const { error, line } = this.refusal;
      if (error instanceof BadRepositoryPath) throw upstreamError(`${this.file} line ${line}: ${error.message}`);
      throw error;
    }
  }
}

/** The `data` elements of repomd.xml. */
function parseRepomd(bytes: Buffer): MetadataFile[] {
  const files: MetadataFile[] = [];
  let current: { type: string; location?: Location; checksumType?: string; checksum?: string; size?: string } | null = null;
  let field: 'checksum' | 'size' | null = null;
  let text = '';
  const walker = new XmlWalker(REPOMD, {
    opentag(tag, depth) {
      if (depth === 1 && tag.name !== 'repomd') throw new BadRepositoryPath(`the root element is <${tag.name}>, not <repomd>`);
      if (depth === 2 && tag.name === 'data') current = { type: tag.attributes.type ?? '' };
      if (depth !== 3 || current === null) return;
      if (tag.name === 'location') current.location = { href: tag.attributes.href ?? '', base: tag.attributes['xml:base'] ?? null };
      else if (tag.name === 'checksum' || tag.name === 'size') {
        field = tag.name;
        text = '';
        if (tag.name === 'checksum') current.checksumType = tag.attributes.type;
      }
    },
    text(t) {
      if (field !== null) text += t;
    },
    closetag(name, depth) {
      if (depth === 3 && field !== null && current !== null) {
        current[field] = text;
        field = null;
      }
      if (depth !== 2 || name !== 'data' || current === null) return;
      const what = `data "${current.type}"`;
      if (!current.location?.href) throw new BadRepositoryPath(`${what} has no location href`);
      if (current.checksum === undefined) throw new BadRepositoryPath(`${what} has no checksum`);
      files.push({
        type: current.type,
        location: current.location,
        checksum: checksumOf(current.checksumType, current.checksum, what),
        size: sizeOf(current.size, what),
      });
      current = null;
    },
  });
  walker.write(bytes);
  walker.close();
  return files;
}

/** A package being read from primary.xml. */
interface PackageFields {
  name: string;
  location?: Location;
  checksumType?: string;
  checksum?: string;
  size?: string;
}

/**
 * The packages of a primary.xml, decompressed and parsed as the bytes arrive, each checked. The download's
 * checksum and size are compared with repomd.xml's once it ends: the entries already yielded are worth
 * nothing before that (the import writes nothing until the whole repository is read).
 */
async function* readPrimary(ctx: ImporterContext, primary: MetadataFile, expectedBefore: number): AsyncGenerator<CatalogEntryInput> {
  const file = primary.location.href;
  const base = primary.location.base === null ? ctx.baseUrl : directoryUrl(primary.location.base, ctx.baseUrl);
  const url = hrefUrl(file, base);
  ctx.report({ file });
  const body = await ctx.client.open(url);
  const hash = createHash(primary.checksum.algorithm);
  let received = 0;
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of body!) {
      hash.update(chunk);
      received += chunk.length;
      yield chunk;
    }
  }

  let ready: CatalogEntryInput[] = [];
  let pkg: PackageFields | null = null;
  let field: 'name' | 'checksum' | null = null;
  let text = '';
  let count = 0;
  const walker = new XmlWalker(file, {
    opentag(tag, depth) {
      if (depth === 1) {
        if (tag.name !== 'metadata') throw new BadRepositoryPath(`the root element is <${tag.name}>, not <metadata>: not primary metadata`);
        const packages = Number(tag.attributes.packages);
        if (Number.isSafeInteger(packages) && packages >= 0) ctx.report({ expected: expectedBefore + packages });
      } else if (depth === 2 && tag.name === 'package') {
        pkg = { name: '' };
      } else if (depth === 3 && pkg !== null) {
        if (tag.name === 'location') pkg.location = { href: tag.attributes.href ?? '', base: tag.attributes['xml:base'] ?? null };
        else if (tag.name === 'size') pkg.size = tag.attributes.package;
        else if (tag.name === 'name' || tag.name === 'checksum') {
          field = tag.name;
          text = '';
          if (tag.name === 'checksum') pkg.checksumType = tag.attributes.type;
        }
      }
    },
    text(t) {
      if (field !== null) text += t;
    },
    closetag(name, depth) {
      if (depth === 3 && field !== null && pkg !== null) {
        if (field === 'name') pkg.name = text.trim();
        else pkg.checksum = text;
        field = null;
      }
      if (depth !== 2 || name !== 'package' || pkg === null) return;
      count++;
      const what = `package ${pkg.name ? JSON.stringify(pkg.name) : `#${count}`}`;
      if (!pkg.location?.href) throw new BadRepositoryPath(`${what} has no location href`);
      if (pkg.checksum === undefined) throw new BadRepositoryPath(`${what} has no checksum`);
      if (pkg.size === undefined) throw new BadRepositoryPath(`${what} has no package size`);
      try {
        ready.push(locatedEntry(ctx, pkg.location, checksumOf(pkg.checksumType, pkg.checksum, what), sizeOf(pkg.size, what)));
      } catch (err) {
        if (err instanceof BadRepositoryPath) throw new BadRepositoryPath(`${what}: ${err.message}`);
        throw err;
      }
      pkg = null;
    },
  });

  try {
    for await (const chunk of decompress(hashed(), file)) {
      walker.write(chunk);
      if (ready.length > 0) {
        const batch = ready;
        ready = [];
        yield* batch;
      }
    }
    walker.close();
  } catch (err) {
    if (err instanceof LazyContentError) throw err;
    throw upstreamError(`${file}: ${(err as Error).message}`, err);
  }
  yield* ready;

  const digest = hash.digest('hex');
  if (primary.size !== null && received !== primary.size) {
    throw upstreamError(`${file}: ${received} bytes downloaded, ${REPOMD} says ${primary.size}`);
  }
  if (digest !== primary.checksum.digest) {
    throw upstreamError(`${file}: its ${primary.checksum.algorithm} checksum is ${digest}, ${REPOMD} says ${primary.checksum.digest}`);
  }
}

/**
 * An RPM (yum/dnf) repository: `repodata/repomd.xml`, every metadata file it lists, `.treeinfo` and `listing`
 * when present, and every package of the primary metadata (gzip, xz or zstd; parsed as a stream, so a primary
 * of hundreds of megabytes is never held in memory). `repomd.xml` (and its signature, when present) changes in
 * place upstream: its entries are served fresh (`maxAgeMs`), without size or digest.
 */
export const yumImporter: Importer = {
  type: 'yum',
  async *read(ctx: ImporterContext): AsyncGenerator<CatalogEntryInput> {
    const repomdUrl = new URL(REPOMD, ctx.baseUrl).toString();
    ctx.report({ file: REPOMD });
    const repomd = await ctx.client.fetch(repomdUrl);
    const files = parseRepomd(repomd!.bytes);
    const primary = files.find((f) => f.type === 'primary');
    if (!primary) throw upstreamError(`${REPOMD} lists no primary metadata: not a usable yum repository`);

    const entries: CatalogEntryInput[] = [{ path: entryPath(ctx.prefix, REPOMD), remote: ctx.remote, url: repomdUrl, maxAgeMs: ctx.maxAgeMs }];
    const signatureUrl = `${repomdUrl}.asc`;
    if (await ctx.client.fetch(signatureUrl, { optional: true })) {
      entries.push({ path: entryPath(ctx.prefix, `${REPOMD}.asc`), remote: ctx.remote, url: signatureUrl, maxAgeMs: ctx.maxAgeMs });
    }
    for (const f of files) {
      try {
        entries.push(locatedEntry(ctx, f.location, f.checksum, f.size));
      } catch (err) {
        if (err instanceof BadRepositoryPath) throw upstreamError(`${REPOMD}: data "${f.type}": ${err.message}`);
        throw err;
      }
    }
    for (const name of OPTIONAL_FILES) {
      const url = new URL(name, ctx.baseUrl).toString();
      ctx.report({ file: name });
      const found = await ctx.client.fetch(url, { optional: true });
      if (found) entries.push({ path: entryPath(ctx.prefix, name), remote: ctx.remote, url, size: found.size, digestAlgorithm: found.digestAlgorithm, digest: found.digest });
    }
    yield* entries;
    yield* readPrimary(ctx, primary, entries.length);
  },
};
