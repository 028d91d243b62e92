import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, type Job, type JobType, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pathHash } from '../catalog/catalog.js';
import type { SaveQueue, SaveQueueListOptions, SaveTask, SaveTaskLease, SaveTaskState } from './save-queue.js';

export interface BullMqSaveQueueOptions {
  /**
   * Redis: a `redis://` or `rediss://` URL, for a connection that the queue opens and closes; or an ioredis
   * client created with `maxRetriesPerRequest: null` (BullMQ's Worker requires it), which `close()` leaves open.
   */
  connection: string | Redis;
  /** BullMQ queue name. @default 'lazy-content-save' */
  queueName?: string;
  /** Prefix of BullMQ's Redis keys. @default 'lazy-content' */
  prefix?: string;
}

const defaults = {
  queueName: 'lazy-content-save',
  prefix: 'lazy-content',
} satisfies Required<Omit<BullMqSaveQueueOptions, 'connection'>>;

interface SaveJobData {
  path: string;
  /** Tells `schedule` whether its add created the job or found one of the path already there. */
  scheduleId: string;
}

/** A lease of this queue: the BullMQ lock token that the worker took the job with. */
interface BullMqSaveTaskLease extends SaveTaskLease {
  readonly token: string;
}

const JOB_NAME = 'save';
/** The Worker's own lock for a taken job, replaced by the lease asked for right after the take. */
const TAKE_LOCK_MS = 30_000;
/** BullMQ skips a stalled check that follows another within `stalledInterval`; the queue sets it to 1 ms. */
const STALLED_INTERVAL_MS = 1;
const STALLED_CHECK_GAP_MS = 3;
const ERROR_MAX_LENGTH = 2000;

const jobTypes: Record<SaveTaskState, JobType[]> = {
  pending: ['waiting', 'prioritized', 'delayed'],
  running: ['active'],
  done: ['completed'],
  failed: ['failed'],
};
const stateOfType = (type: JobType): SaveTaskState =>
  type === 'active' ? 'running' : type === 'completed' ? 'done' : type === 'failed' ? 'failed' : 'pending';

/** BullMQ's answers to an operation under a lock that is no longer the caller's. */
const lostLease = new Set<unknown>([ErrorCode.JobNotExist, ErrorCode.JobLockNotExist, ErrorCode.JobNotInState, ErrorCode.JobLockMismatch]);
const codeOf = (err: unknown): unknown => (err instanceof Error ? (err as Error & { code?: unknown }).code : undefined);

/** Like the database queue, an operation under a lost lease changes nothing and does not throw. */
async function unlessLeaseLost(operation: Promise<unknown>): Promise<void> {
  try {
    await operation;
  } catch (err) {
    if (!lostLease.has(codeOf(err))) throw err;
  }
}

function tokenOf(lease: SaveTaskLease): string {
  const token = (lease as Partial<BullMqSaveTaskLease>).token;
  if (typeof token !== 'string') throw new TypeError('lazy-content: this lease was not taken from a BullMqSaveQueue');
  return token;
}

function isIoredis(value: unknown): value is Redis {
  return value instanceof Redis || (typeof value === 'object' && value !== null && typeof (value as Redis).duplicate === 'function' && 'options' in value);
}

function openConnection(connection: unknown): { redis: Redis; owned: boolean } {
  if (typeof connection === 'string') {
    let protocol = '';
    try {
      protocol = new URL(connection).protocol;
    } catch {
      // reported below
    }
    if (protocol !== 'redis:' && protocol !== 'rediss:') {
      throw new TypeError('lazy-content: option "connection" of the BullMQ save queue must be a redis:// or rediss:// URL, or an ioredis client');
    }
    return { redis: new Redis(connection, { maxRetriesPerRequest: null }), owned: true };
  }
  if (!isIoredis(connection)) {
    throw new TypeError('lazy-content: option "connection" of the BullMQ save queue must be a redis:// or rediss:// URL, or an ioredis client');
  }
  // Checked here, before BullMQ's Worker throws the same while it has a duplicate connection open already.
  if (connection.options.maxRetriesPerRequest !== null) {
    throw new TypeError(
      'lazy-content: the ioredis client in option "connection" of the BullMQ save queue must be created with { maxRetriesPerRequest: null }, which BullMQ workers require',
    );
  }
  return { redis: connection, owned: false };
}

/**
 * The save queue in Redis, on BullMQ, processed by hand: a task is a BullMQ job whose id is the SHA-256 of
 * its path, so that one path has one job; a lease is the job's lock, taken with a token of the owner's.
 *
 * - `take` runs BullMQ's stalled check (which moves back to wait the active jobs whose lock has expired),
 *   then `getNextJob` (which also promotes the delayed jobs that are due) and sets the lock to the lease.
 * - `renew` extends the lock; `complete` and `fail` need it too. A lock that expired is lost even when no
 *   other worker took the task yet: BullMQ cannot take it back.
 * - `fail` with a time moves the job to delayed, with the error, atomically under the lock; without one, to
 *   failed. `attempts` is BullMQ's count of attempts started, which `retry` resets.
 * - A completed job is removed; scheduling the path of a failed job replaces that job by a new one.
 */
export class BullMqSaveQueue implements SaveQueue {
  private readonly redis: Redis;
  private readonly ownsConnection: boolean;
  private readonly queue: Queue<SaveJobData>;
  private readonly worker: Worker<SaveJobData>;
  private closing: Promise<void> | undefined;

  constructor(options: BullMqSaveQueueOptions) {
    const { redis, owned } = openConnection(options.connection);
    const queueName = options.queueName ?? defaults.queueName;
    const prefix = options.prefix ?? defaults.prefix;
    this.redis = redis;
    this.ownsConnection = owned;
    this.queue = new Queue<SaveJobData>(queueName, { connection: redis, prefix });
    this.worker = new Worker<SaveJobData>(queueName, null, {
      connection: redis,
      prefix,
      autorun: false,
      lockDuration: TAKE_LOCK_MS,
      stalledInterval: STALLED_INTERVAL_MS,
      // A job whose lease expired goes back to wait however often that happens, never to failed.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
    });
    // Without listeners these events would crash the process; each failed command rejects its call anyway.
    const ignore = (): void => {};
    this.queue.on('error', ignore);
    this.worker.on('error', ignore);
    if (owned) redis.on('error', ignore);
  }

  async schedule(path: string, options: { delayMs?: number } = {}): Promise<boolean> {
    const jobId = pathHash(path);
    const delay = Math.max(0, options.delayMs ?? 0);
    for (let round = 0; round < 3; round++) {
      const scheduleId = randomUUID();
      // BullMQ ignores an add whose job id exists: the stored scheduleId says whether this add made the job.
      await this.queue.add(JOB_NAME, { path, scheduleId }, { jobId, delay, removeOnComplete: true, removeOnFail: false, stackTraceLimit: 0 });
      const job = await this.queue.getJob(jobId);
      if (job?.data.scheduleId === scheduleId) return true;
      const state = job ? await job.getState() : 'unknown';
      if (state === 'unknown') continue; // finished and removed meanwhile: the path is free again
      if (state !== 'failed' && state !== 'completed') return false;
      // A finished job keeps the path's id; the database queue adds a new row beside it, here it is replaced.
      // A job that is locked again meanwhile (retried and taken) is not removed, and the next round sees it.
      await this.queue.remove(jobId);
    }
    return false;
  }

  async take(owner: string, leaseMs: number): Promise<SaveTaskLease | null> {
    await this.recoverExpiredLeases();
    const token = `${owner}:${randomUUID()}`;
    const job = await this.worker.getNextJob(token, { block: false });
    if (!job) return null;
    // Lost already only if the take lock ran out before this: the task is left to the stalled check.
    if ((await job.extendLock(token, leaseMs)) !== 1) return null;
    const lease: BullMqSaveTaskLease = {
      task: this.taskOf(job, 'running', { owner, expiresAt: Date.now() + leaseMs }, null),
      owner,
      token,
    };
    return lease;
  }

  /**
   * BullMQ's stalled check works in two steps: a pass moves back to wait the active jobs that an earlier pass
   * marked and whose lock is gone, then marks all active jobs (a lock extension unmarks its job). Two passes
   * move every job whose lock has expired by now; the wait lets the second one past BullMQ's throttle.
   */
  private async recoverExpiredLeases(): Promise<void> {
    const backend = this.worker.getBackend();
    await backend.moveStalledJobsToWait();
    if ((await this.queue.getActiveCount()) === 0) return;
    await sleep(STALLED_CHECK_GAP_MS);
    await backend.moveStalledJobsToWait();
  }

  async renew(lease: SaveTaskLease, leaseMs: number): Promise<boolean> {
    return (await this.worker.getBackend().extendLock(lease.task.id, tokenOf(lease), leaseMs)) === 1;
  }

  async complete(lease: SaveTaskLease): Promise<void> {
    const token = tokenOf(lease);
    const job = await this.queue.getJob(lease.task.id);
    if (job) await unlessLeaseLost(job.moveToCompleted(null, token, false));
  }

  async fail(lease: SaveTaskLease, error: string, retryAt: number | null): Promise<void> {
    const token = tokenOf(lease);
    const message = error.slice(0, ERROR_MAX_LENGTH);
    if (retryAt === null) {
      // The job has a single BullMQ attempt, so moveToFailed fails it for good instead of retrying it.
      const job = await this.queue.getJob(lease.task.id);
      if (job) await unlessLeaseLost(job.moveToFailed(new Error(message), token, false));
      return;
    }
    // Job.moveToDelayed cannot record the error; the backend's can, in the same script that checks the lock.
    const now = Date.now();
    await unlessLeaseLost(
      this.worker.getBackend().moveToDelayed(lease.task.id, now, Math.max(0, retryAt - now), token, { fieldsToUpdate: { failedReason: message } }),
    );
  }

  async list(options: SaveQueueListOptions = {}): Promise<SaveTask[]> {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const types = options.state ? jobTypes[options.state] : Object.values(jobTypes).flat();
    const found = await Promise.all(
      types.map(async (type) => (await this.queue.getJobs([type], 0, limit - 1, false)).map((job) => ({ job, type }))),
    );
    // A job that changed state between two reads is listed once.
    const byId = new Map<string, { job: Job<SaveJobData>; type: JobType }>();
    for (const entry of found.flat()) if (entry.job.id !== undefined && !byId.has(entry.job.id)) byId.set(entry.job.id, entry);
    const jobs = [...byId.values()].sort((a, b) => b.job.timestamp - a.job.timestamp).slice(0, limit);

    // Who holds a running task and until when is in the job's lock; when a delayed one is due, in its score.
    const reads = this.redis.pipeline();
    for (const { job, type } of jobs) {
      const lockKey = `${this.queue.toKey(job.id!)}:lock`;
      if (type === 'active') reads.get(lockKey).pttl(lockKey);
      else if (type === 'delayed') reads.zscore(this.queue.toKey('delayed'), job.id!);
    }
    const replies = ((await reads.exec()) ?? []).map(([err, value]) => (err ? null : value));
    const now = Date.now();
    let next = 0;
    return jobs.map(({ job, type }) => {
      const state = stateOfType(type);
      if (type === 'active') {
        const token = replies[next++];
        const ttl = Number(replies[next++]);
        // The token is `${owner}:${uuid}`; a lock that expired has neither owner nor expiry any more.
        const lease = typeof token === 'string' && ttl > 0 ? { owner: token.slice(0, token.lastIndexOf(':')), expiresAt: now + ttl } : null;
        return this.taskOf(job, state, lease, null);
      }
      if (type === 'delayed') {
        const score = replies[next++];
        // BullMQ scores a delayed job with its due time times 4096, plus a counter.
        return this.taskOf(job, state, null, score === null || score === undefined ? null : Math.floor(Number(score) / 0x1000));
      }
      return this.taskOf(job, state, null, null);
    });
  }

  private taskOf(job: Job<SaveJobData>, state: SaveTaskState, lease: { owner: string; expiresAt: number } | null, dueAt: number | null): SaveTask {
    const finished = state === 'done' || state === 'failed';
    // BullMQ keeps no due time for a job that is due; the time it last started (or was made) stands for it.
    const nextAttemptAt = dueAt ?? (finished ? (job.finishedOn ?? job.timestamp) : (job.processedOn ?? job.timestamp + (job.delay || 0)));
    return {
      id: job.id!,
      path: job.data.path,
      state,
      attempts: job.attemptsStarted || 0,
      nextAttemptAt,
      lastError: job.failedReason || null,
      leaseOwner: lease?.owner ?? null,
      leaseExpiresAt: lease?.expiresAt ?? null,
      createdAt: job.timestamp,
      updatedAt: Math.max(job.timestamp, job.processedOn ?? 0, job.finishedOn ?? 0),
    };
  }

  async retry(path: string): Promise<boolean> {
    const job = await this.queue.getJob(pathHash(path));
    if (!job) return false;
    try {
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      return true;
    } catch (err) {
      // Not failed (any more): pending, running, or retried by another caller meanwhile.
      if (codeOf(err) === ErrorCode.JobNotExist || codeOf(err) === ErrorCode.JobNotInState) return false;
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      await this.worker.close();
      await this.queue.close();
      if (this.ownsConnection) await this.redis.quit();
    })();
    return this.closing;
  }
}
