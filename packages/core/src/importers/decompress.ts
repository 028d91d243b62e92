import { Readable } from 'node:stream';
import { ReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
// A CommonJS bundle whose named exports Node cannot see: its default export is `module.exports`.
import xzDecompress from 'xz-decompress';

export type Compression = 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'zchunk' | 'none';

const MAGIC: Array<[Compression, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['zchunk', [0x00, 0x5a, 0x43, 0x4b]],
];

const EXTENSIONS: Array<[Compression, RegExp]> = [
  ['gzip', /\.gz$/i],
  ['xz', /\.xz$/i],
  ['zstd', /\.zst$/i],
  ['bzip2', /\.bz2$/i],
  ['zchunk', /\.zck$/i],
];

/** The compression of a file: by its first bytes when they say, else by its name's extension. */
export function compressionOf(name: string, head: Uint8Array): Compression {
  for (const [kind, magic] of MAGIC) if (magic.every((b, i) => head[i] === b)) return kind;
  for (const [kind, extension] of EXTENSIONS) if (extension.test(name)) return kind;
  return 'none';
}

/** Codes of xz-embedded (`xz.h`) that get_next_output reports. */
const XZ_ERRORS: Record<string, string> = {
  '2': 'its integrity check type is not supported',
  '3': 'out of memory',
  '4': 'it needs more memory than allowed',
  '5': 'it is not in the xz format',
  '6': 'it uses unsupported options',
  '7': 'it is corrupt',
  '8': 'it is truncated',
};

/**
 * Decompresses a stream of chunks as it arrives (never the whole file in memory), detecting the compression
 * from the first bytes, else from `name`. A corrupt or truncated stream rejects with a message that says so.
 */
export async function* decompress(source: AsyncIterable<Uint8Array>, name: string): AsyncGenerator<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  // Enough of the start to recognise a magic number, however the body was split into chunks.
  const head: Uint8Array[] = [];
  let headLength = 0;
  let ended = false;
  while (headLength < 6) {
    const next = await iterator.next();
    if (next.done) {
      ended = true;
      break;
    }
    head.push(next.value);
    headLength += next.value.length;
  }
  const first = Buffer.concat(head);
  const kind = compressionOf(name, first);
  async function* rest(): AsyncGenerator<Uint8Array> {
    if (first.length > 0) yield first;
    if (ended) return;
    try {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
    } finally {
      await iterator.return?.();
    }
  }
  switch (kind) {
    case 'none':
      yield* rest();
      return;
    case 'gzip':
      yield* gunzip(rest());
      return;
    case 'xz':
      yield* unxz(rest());
      return;
    case 'zstd':
      yield* unzstd(rest());
      return;
    default:
      await iterator.return?.();
      throw new Error(`${kind} compression is not supported (only gzip, xz and zstd)`);
  }
}

async function* gunzip(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const input = Readable.from(source);
  const inflate = createGunzip();
  input.on('error', (err) => inflate.destroy(err));
  input.pipe(inflate);
  try {
    for await (const chunk of inflate as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'Z_BUF_ERROR') throw new Error('the gzip stream is truncated', { cause: err });
    if (typeof code === 'string' && code.startsWith('Z_')) throw new Error(`the gzip stream is corrupt (${(err as Error).message})`, { cause: err });
    throw err;
  } finally {
    input.destroy();
    inflate.destroy();
  }
}

async function* unxz(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  // A pull source: the decoder asks for compressed bytes only as fast as its output is read.
  const compressed = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel() {
      await iterator.return?.();
    },
  });
  const output = new xzDecompress.XzReadableStream(compressed as globalThis.ReadableStream<Uint8Array>);
  try {
    for await (const chunk of output as unknown as AsyncIterable<Uint8Array>) yield chunk;
  } catch (err) {
    const code = /error code (\d+)/.exec((err as Error).message)?.[1];
    if (code !== undefined) throw new Error(`the xz stream cannot be read: ${XZ_ERRORS[code] ?? `error ${code}`}`, { cause: err });
    throw err;
  }
}

async function* unzstd(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const out: Uint8Array[] = [];
  // fzstd may hand out views of its own window: copied before the next push can overwrite them.
  const decoder = new ZstdDecompress((chunk) => {
    if (chunk.length > 0) out.push(chunk.slice());
  });
  const push = (chunk: Uint8Array, final: boolean) => {
    try {
      decoder.push(chunk, final);
    } catch (err) {
      const message = (err as Error).message;
      throw new Error(message === 'unexpected EOF' ? 'the zstd stream is truncated' : `the zstd stream is corrupt (${message})`, { cause: err });
    }
  };
  for await (const chunk of source) {
    push(chunk, false);
    yield* out.splice(0);
  }
  push(new Uint8Array(0), true);
  yield* out.splice(0);
}
