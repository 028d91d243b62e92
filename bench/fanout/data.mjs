// The bytes of the fan-out benchmark's files: deterministic pseudo-random, the same in the origin (which serves
// them) and in the benchmark (which computes their SHA-256 for the catalog). A block of PERIOD bytes from a
// seeded xorshift generator repeats through the file; PERIOD is a prime, so the pattern never lines up with
// chunk, page or buffer sizes and a byte served at the wrong offset changes the digest.
import { createHash } from 'node:crypto';

/** 2^20 − 3, a prime. */
export const PERIOD = 1_048_573;

/** The block twice over: any window of up to PERIOD bytes starting anywhere in the file is one subarray. */
export function patternTwice() {
  const words = new Uint32Array(Math.ceil(PERIOD / 4));
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  const block = Buffer.from(words.buffer, 0, PERIOD);
  return Buffer.concat([block, block]);
}

/** The bytes `[offset, offset + length)` of every file (length ≤ PERIOD), without copying. */
export function slice(twice, offset, length) {
  const at = offset % PERIOD;
  return twice.subarray(at, at + length);
}

/** SHA-256 (hex) of the first `size` bytes. */
export function sha256Of(size, twice = patternTwice()) {
  const hash = createHash('sha256');
  for (let at = 0; at < size; at += PERIOD) hash.update(slice(twice, at, Math.min(PERIOD, size - at)));
  return hash.digest('hex');
}

export const MiB = 1024 * 1024;

/** The origin's path of the file of `size` bytes. */
export const filePath = (size) => `/file-${size}.bin`;
