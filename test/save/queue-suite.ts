import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SaveQueue } from '@lazy-content/core';

/** A queue under test, with a clock the test moves, and what to do afterwards. */
export interface QueueUnderTest {
  queue: SaveQueue;
  /** Moves the queue's clock forward (leases, backoff); real implementations may sleep instead. */
  advance(ms: number): Promise<void>;
  /** The queue's clock now, ms since the epoch. */
  now(): number;
  close(): Promise<void>;
}

/**
 * The behaviour every SaveQueue must show, written once: the database queue (SQLite, PostgreSQL) and the
 * BullMQ queue run it. `make` returns null when the backing service is not reachable (skipped with a notice).
 */
export function saveQueueSuite(name: string, make: () => Promise<QueueUnderTest | null>): void {
  describe(`SaveQueue: ${name}`, () => {
    let q: QueueUnderTest | null = null;
    beforeAll(async () => {
      q = await make();
    });
    afterAll(async () => {
      await q?.close();
    });
    const t = (title: string, fn: (q: QueueUnderTest) => Promise<void>) =>
      it(title, async (ctx) => {
        if (!q) ctx.skip();
        await fn(q!);
      });

    t('schedules one task per path while it is pending or running', async ({ queue }) => {
      expect(await queue.schedule('a/one.rpm')).toBe(true);
      expect(await queue.schedule('a/one.rpm')).toBe(false);
      const lease = await queue.take('worker-1', 10_000);
      expect(lease?.task.path).toBe('a/one.rpm');
      expect(lease?.task.attempts).toBe(1);
      expect(lease?.task.state).toBe('running');
      expect(await queue.schedule('a/one.rpm')).toBe(false);
      await queue.complete(lease!);
      // Done: a new save of the same path may be scheduled again.
      expect(await queue.schedule('a/one.rpm')).toBe(true);
      const again = await queue.take('worker-1', 10_000);
      await queue.complete(again!);
    });

    t('gives each due task to one worker only, oldest first', async ({ queue }) => {
      await queue.schedule('b/1');
      await queue.schedule('b/2');
      const [x, y, z] = await Promise.all([queue.take('w1', 10_000), queue.take('w2', 10_000), queue.take('w3', 10_000)]);
      const taken = [x, y, z].filter((l) => l !== null).map((l) => l!.task.path).sort();
      expect(taken).toEqual(['b/1', 'b/2']);
      for (const l of [x, y, z]) if (l) await queue.complete(l);
      expect(await queue.take('w1', 10_000)).toBeNull();
    });

    t('does not give a task before it is due', async ({ queue, advance }) => {
      await queue.schedule('c/later', { delayMs: 5_000 });
      expect(await queue.take('w', 10_000)).toBeNull();
      await advance(5_100);
      const lease = await queue.take('w', 10_000);
      expect(lease?.task.path).toBe('c/later');
      await queue.complete(lease!);
    });

    t('takes a task again when its worker died (lease expired), and the old lease is void', async ({ queue, advance }) => {
      await queue.schedule('d/crash');
      const first = await queue.take('dead-worker', 1_000);
      expect(first).not.toBeNull();
      expect(await queue.take('other', 1_000)).toBeNull();
      await advance(1_500);
      const second = await queue.take('other', 10_000);
      expect(second?.task.path).toBe('d/crash');
      expect(second?.task.attempts).toBe(2);
      expect(await queue.renew(first!, 10_000)).toBe(false);
      expect(await queue.renew(second!, 10_000)).toBe(true);
      await queue.complete(first!);
      expect((await queue.list({ state: 'running' })).map((t) => t.path)).toContain('d/crash');
      await queue.complete(second!);
      expect((await queue.list({ state: 'running' })).map((t) => t.path)).not.toContain('d/crash');
    });

    t('a renewed lease keeps the task', async ({ queue, advance }) => {
      await queue.schedule('e/long');
      const lease = await queue.take('w', 1_000);
      await advance(600);
      expect(await queue.renew(lease!, 1_000)).toBe(true);
      await advance(600);
      expect(await queue.take('thief', 1_000)).toBeNull();
      await queue.complete(lease!);
    });

    t('retries a failed attempt when due, then fails for good, keeps the error, and retries on demand', async ({ queue, advance, now }) => {
      await queue.schedule('f/flaky');
      const one = await queue.take('w', 10_000);
      await queue.fail(one!, 'digest mismatch', now() + 2_000);
      expect(await queue.take('w', 10_000)).toBeNull();
      await advance(2_100);
      const two = await queue.take('w', 10_000);
      expect(two?.task.attempts).toBe(2);
      expect(two?.task.lastError).toBe('digest mismatch');
      await queue.fail(two!, 'digest mismatch again', null);
      const failed = (await queue.list({ state: 'failed' })).find((t) => t.path === 'f/flaky');
      expect(failed?.lastError).toBe('digest mismatch again');
      expect(failed?.attempts).toBe(2);
      expect(await queue.take('w', 10_000)).toBeNull();
      expect(await queue.retry('f/flaky')).toBe(true);
      expect(await queue.retry('f/flaky')).toBe(false);
      const three = await queue.take('w', 10_000);
      expect(three?.task.path).toBe('f/flaky');
      expect(three?.task.attempts).toBe(1);
      await queue.complete(three!);
      expect(await queue.retry('never/scheduled')).toBe(false);
    });

    t('lists tasks by state', async ({ queue }) => {
      await queue.schedule('g/listed');
      const pending = await queue.list({ state: 'pending' });
      expect(pending.find((t) => t.path === 'g/listed')).toMatchObject({ state: 'pending', attempts: 0, lastError: null });
      const lease = await queue.take('w', 10_000);
      await queue.complete(lease!);
    });
  });
}
