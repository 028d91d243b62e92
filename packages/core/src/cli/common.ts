import * as os from 'node:os';
import * as path from 'node:path';
import Keyv from 'keyv';
import type { LazyContent } from '../lazy-content.js';
import type { LazyContentOptions } from '../options.js';
import type { BullMqSaveQueue } from '../save/bullmq-save-queue.js';
import { defaultLogger } from '../logger.js';

/** Options every command takes. */
export const commonOptions = {
  'data-dir': { type: 'string' },
  database: { type: 'string' },
  redis: { type: 'string' },
} as const;

export const commonHelp = `  --data-dir DIR     lazy-content's data folder (catalog, cache, keys)   [./.lazy-content]
  --database URL     postgres://… or a SQLite file                        [<data-dir>/catalog.sqlite]
  --redis URL        redis://…: save queue on BullMQ, cache index in Redis`;

/** What `baseOptions` gives: the options, the BullMQ queue when --redis, and `release` for the Redis clients it made. */
export type BaseOptions = LazyContentOptions & {
  redisQueue?: BullMqSaveQueue;
  /** Closes the Redis clients made for --redis (queue and cache index); the process cannot exit while they are open. */
  release(): Promise<void>;
};

/** lazy-content options from the common command-line options (Redis clients are loaded only for --redis). */
export async function baseOptions(values: Record<string, unknown>): Promise<BaseOptions> {
  const dataDir = typeof values['data-dir'] === 'string' ? values['data-dir'] : './.lazy-content';
  const database = typeof values.database === 'string' ? values.database : undefined;
  const redis = typeof values.redis === 'string' ? values.redis : undefined;
  const options: BaseOptions = {
    dataDir,
    catalog: database ? { database } : {},
    logger: defaultLogger(),
    release: async () => {},
  };
  if (redis) {
    const { BullMqSaveQueue } = await import('../save/bullmq-save-queue.js');
    const { default: KeyvRedis } = await import('@keyv/redis');
    const queue = new BullMqSaveQueue({ connection: redis });
    options.redisQueue = queue;
    options.save = { queue };
    // Each cache folder has its own index; several hosts share Redis.
    const cacheDir = path.resolve(dataDir, 'cache');
    const index = new Keyv({ store: new KeyvRedis(redis), namespace: `lazy-content:cache:${os.hostname()}:${cacheDir}` });
    options.cache = { index };
    let released = false;
    options.release = async () => {
      if (released) return;
      released = true;
      await queue.close();
      await index.disconnect();
    };
  }
  return options;
}

/** A lazy-content instance for an admin command: no worker, quiet. Close it with `close()`, which also releases Redis. */
export async function adminInstance(values: Record<string, unknown>): Promise<{ lc: LazyContent; close(): Promise<void> }> {
  const { redisQueue, release, ...options } = await baseOptions(values);
  const { createLazyContent } = await import('../lazy-content.js');
  const lc = createLazyContent({ ...options, logger: false, save: { ...options.save, worker: false, ...(redisQueue ? { queue: redisQueue } : {}) } });
  return {
    lc,
    close: async () => {
      try {
        await lc.close();
      } finally {
        await release();
      }
    },
  };
}

export function helpOf(usage: string, options: string): string {
  return `Usage: lazy-content ${usage}\n\nOptions:\n${options}\n${commonHelp}\n  -h, --help         this help\n`;
}
