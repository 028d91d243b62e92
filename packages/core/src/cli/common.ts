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

/** lazy-content options from the common command-line options (Redis clients are loaded only for --redis). */
export async function baseOptions(values: Record<string, unknown>): Promise<LazyContentOptions & { redisQueue?: BullMqSaveQueue }> {
  const dataDir = typeof values['data-dir'] === 'string' ? values['data-dir'] : './.lazy-content';
  const database = typeof values.database === 'string' ? values.database : undefined;
  const redis = typeof values.redis === 'string' ? values.redis : undefined;
  const options: LazyContentOptions & { redisQueue?: BullMqSaveQueue } = {
    dataDir,
    catalog: database ? { database } : {},
    logger: defaultLogger(),
  };
  if (redis) {
    const { BullMqSaveQueue } = await import('../save/bullmq-save-queue.js');
    const { default: KeyvRedis } = await import('@keyv/redis');
    const queue = new BullMqSaveQueue({ connection: redis });
    options.redisQueue = queue;
    options.save = { queue };
    // Each cache folder has its own index; several hosts share Redis.
    const cacheDir = path.resolve(dataDir, 'cache');
    options.cache = { index: new Keyv({ store: new KeyvRedis(redis), namespace: `lazy-content:cache:${os.hostname()}:${cacheDir}` }) };
  }
  return options;
}

/** A lazy-content instance for an admin command: no worker, quiet. */
export async function adminInstance(values: Record<string, unknown>): Promise<LazyContent> {
  const { redisQueue, ...options } = await baseOptions(values);
  const { createLazyContent } = await import('../lazy-content.js');
  return createLazyContent({ ...options, logger: false, save: { ...options.save, worker: false, ...(redisQueue ? { queue: redisQueue } : {}) } });
}

export function helpOf(usage: string, options: string): string {
  return `Usage: lazy-content ${usage}\n\nOptions:\n${options}\n${commonHelp}\n  -h, --help         this help\n`;
}
