import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { BullMqSaveQueue } from '@lazy-content/core';
import { REDIS_URL, redisAvailable } from '../helpers/services.js';
import { saveQueueSuite } from './queue-suite.js';

/** A prefix of its own for each queue, so that parallel runs never share keys. */
const uniquePrefix = () => `lc-test-${randomBytes(4).toString('hex')}`;
const queueName = 'save';

/** Removes everything the queue left in Redis. */
async function obliterate(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  try {
    const queue = new Queue(queueName, { connection: redis, prefix });
    await queue.obliterate({ force: true });
    await queue.close();
    // BullMQ's stalled-check throttle key expires on its own; nothing else may remain.
    const left = (await redis.keys(`${prefix}:*`)).filter((key) => !key.endsWith(':stalled-check'));
    if (left.length > 0) throw new Error(`keys left in Redis: ${left.join(', ')}`);
  } finally {
    await redis.quit();
  }
}

saveQueueSuite('BullMQ (Redis)', async () => {
  if (!(await redisAvailable())) return null;
  const prefix = uniquePrefix();
  const queue = new BullMqSaveQueue({ connection: REDIS_URL, queueName, prefix });
  return {
    queue,
    // Leases and delays run on real time in Redis: wait for it.
    advance: async (ms) => {
      await sleep(ms);
    },
    now: () => Date.now(),
    close: async () => {
      await queue.close();
      await obliterate(prefix);
    },
  };
});

describe('BullMqSaveQueue options', () => {
  it('refuses a connection that is not a Redis URL', () => {
    expect(() => new BullMqSaveQueue({ connection: 'http://127.0.0.1:6379' })).toThrow(/option "connection"/);
    expect(() => new BullMqSaveQueue({ connection: 'not a url' })).toThrow(/option "connection"/);
  });

  it('refuses an ioredis client that BullMQ workers cannot use', async () => {
    const redis = new Redis(REDIS_URL, { lazyConnect: true });
    try {
      expect(() => new BullMqSaveQueue({ connection: redis })).toThrow(/maxRetriesPerRequest: null/);
    } finally {
      redis.disconnect();
    }
  });

  it('works on an ioredis client passed in, and leaves it open on close', async (ctx) => {
    if (!(await redisAvailable())) ctx.skip();
    const prefix = uniquePrefix();
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    try {
      const queue = new BullMqSaveQueue({ connection: redis, queueName, prefix });
      expect(await queue.schedule('z/shared')).toBe(true);
      const lease = await queue.take('w', 10_000);
      expect(lease?.task).toMatchObject({ path: 'z/shared', state: 'running', leaseOwner: 'w' });
      expect((await queue.list({ state: 'running' }))[0]).toMatchObject({ path: 'z/shared', leaseOwner: 'w' });
      await queue.complete(lease!);
      await queue.close();
      expect(await redis.ping()).toBe('PONG');
    } finally {
      await redis.quit();
      await obliterate(prefix);
    }
  });
});
