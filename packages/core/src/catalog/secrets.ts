import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

const PREFIX = 'lcs1';

/**
 * Seals remote secrets (TLS keys, passwords, proxy credentials, header values) with AES-256-GCM before they
 * reach the database, so that a database dump or a query log does not hold them in clear.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new TypeError('the catalog encryption key must be 32 bytes');
    this.key = key;
  }

  seal(plain: string): string;
  seal(plain: string | null | undefined): string | null;
  seal(plain: string | null | undefined): string | null {
    if (plain === null || plain === undefined) return null;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [PREFIX, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join(':');
  }

  open(sealed: string | null): string | null {
    if (sealed === null) return null;
    const [prefix, iv, tag, data] = sealed.split(':');
    if (prefix !== PREFIX || iv === undefined || tag === undefined || data === undefined) {
      throw new Error('sealed secret has an unknown format');
    }
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('a sealed secret could not be opened: the catalog encryption key differs from the one that sealed it');
    }
  }
}

/**
 * Reads a key file of `bytes` random bytes, creating it with mode 0600 on first start. Every process that
 * shares the database (or must verify the same signatures) needs the same file, or the key in its options.
 */
export async function loadOrCreateKeyFile(file: string, bytes: number): Promise<Buffer> {
  try {
    const text = (await fsp.readFile(file, 'utf8')).trim();
    const key = Buffer.from(text, 'base64');
    if (key.length !== bytes) throw new Error(`${file} does not hold a ${bytes}-byte base64 key`);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const key = randomBytes(bytes);
  try {
    await fsp.writeFile(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateKeyFile(file, bytes);
    throw err;
  }
}

/** A key given in options: 32 bytes as a Buffer, or as base64 / hex text. */
export function keyFromOption(value: string | Buffer, bytes: number, option: string): Buffer {
  const key = Buffer.isBuffer(value)
    ? value
    : /^[0-9a-f]+$/i.test(value) && value.length === bytes * 2
      ? Buffer.from(value, 'hex')
      : Buffer.from(value, 'base64');
  if (key.length < bytes) throw new TypeError(`lazy-content: option "${option}" must hold at least ${bytes} bytes (base64 or hex)`);
  return key.subarray(0, bytes);
}
