import { StringDecoder } from 'node:string_decoder';
import type { CatalogEntryInput } from '../catalog/types.js';
import type { Importer, ImporterContext } from './importer.js';
import { BadRepositoryPath, entryPath, plainRelativePath, plainUrl, upstreamError } from './paths.js';

export const PULP_MANIFEST = 'PULP_MANIFEST';

/** Lines of a text stream, numbered from 1, without their `\r\n` or `\n`. */
async function* linesOf(chunks: AsyncIterable<Buffer>): AsyncGenerator<[number, string]> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let number = 0;
  for await (const chunk of chunks) {
    pending += decoder.write(chunk);
    let start = 0;
    for (let end = pending.indexOf('\n'); end !== -1; end = pending.indexOf('\n', start)) {
      yield [++number, pending.slice(start, end).replace(/\r$/, '')];
      start = end + 1;
    }
    pending = pending.slice(start);
  }
  pending += decoder.end();
  if (pending !== '') yield [number + 1, pending.replace(/\r$/, '')];
}

/**
 * A Pulp file repository: `PULP_MANIFEST` at the base URL lists one `relative/path,sha256,size` line per file
 * (blank lines and lines starting with `#` are skipped). The manifest itself is an entry too, served fresh.
 */
export const fileImporter: Importer = {
  type: 'file',
  async *read(ctx: ImporterContext): AsyncGenerator<CatalogEntryInput> {
    const manifestUrl = new URL(PULP_MANIFEST, ctx.baseUrl).toString();
    ctx.report({ file: PULP_MANIFEST });
    yield { path: entryPath(ctx.prefix, PULP_MANIFEST), remote: ctx.remote, url: manifestUrl, maxAgeMs: ctx.maxAgeMs };
    const body = await ctx.client.open(manifestUrl);
    const seen = new Map<string, number>();
    for await (const [number, raw] of linesOf(body!)) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const bad = (why: string) => upstreamError(`${PULP_MANIFEST} line ${number}: ${why}`);
      const fields = line.split(',');
      if (fields.length !== 3) throw bad(`expected "relative/path,sha256,size", got ${fields.length} field${fields.length === 1 ? '' : 's'}`);
      const [rawPath, digest, sizeText] = fields as [string, string, string];
      if (!/^[0-9a-fA-F]{64}$/.test(digest)) throw bad(`sha256 ${JSON.stringify(digest)} is not 64 hexadecimal digits`);
      const size = Number(sizeText);
      if (!/^\d+$/.test(sizeText) || !Number.isSafeInteger(size)) throw bad(`size ${JSON.stringify(sizeText)} is not a whole number of bytes`);
      let segments, path;
      try {
        segments = plainRelativePath(rawPath);
        path = entryPath(ctx.prefix, segments.join('/'));
      } catch (err) {
        if (err instanceof BadRepositoryPath) throw bad(err.message);
        throw err;
      }
      const key = segments.join('/');
      const earlier = seen.get(key);
      if (earlier !== undefined) throw bad(`path ${JSON.stringify(rawPath)} is listed already, on line ${earlier}`);
      if (key === PULP_MANIFEST) throw bad(`path ${JSON.stringify(rawPath)} is the manifest itself`);
      seen.set(key, number);
      yield { path, remote: ctx.remote, url: plainUrl(segments, ctx.baseUrl), size, digestAlgorithm: 'sha256', digest: digest.toLowerCase() };
    }
  },
};
