/** The state of a save task. */
export type SaveTaskState = 'pending' | 'running' | 'done' | 'failed';

/** A save task as the queue reports it. */
export interface SaveTask {
  /** The queue's id of the task (a number in the database queue, a string in BullMQ's). */
  id: string;
  /** The file key (normalised request path) to save. */
  path: string;
  state: SaveTaskState;
  /** Attempts started so far, the running one included. */
  attempts: number;
  /** When the task may run (again), ms since the epoch. */
  nextAttemptAt: number;
  lastError: string | null;
  /** Who holds the lease of a running task. */
  leaseOwner: string | null;
  /** When the lease of a running task ends, ms since the epoch; past it, any worker may take the task again. */
  leaseExpiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** A task taken by a worker: only the lease holder may renew, complete or fail it. */
export interface SaveTaskLease {
  task: SaveTask;
  owner: string;
}

export interface SaveQueueListOptions {
  state?: SaveTaskState;
  /** @default 100 */
  limit?: number;
}

/**
 * Where save tasks wait. A task is taken under a lease (owner + expiry) that its worker renews while it
 * works: a worker that dies stops renewing, the lease runs out, and another worker takes the task again,
 * so nothing is lost on a crash. One task per path while it is pending or running.
 */
export interface SaveQueue {
  /** Adds a task for `path` unless one is pending or running; true when a task was added. */
  schedule(path: string, options?: { delayMs?: number }): Promise<boolean>;
  /** Takes the next due task (pending and due, or running with an expired lease), or null when none is. */
  take(owner: string, leaseMs: number): Promise<SaveTaskLease | null>;
  /** Extends the lease; false when it was lost (expired and taken by another worker). */
  renew(lease: SaveTaskLease, leaseMs: number): Promise<boolean>;
  /** The save succeeded. */
  complete(lease: SaveTaskLease): Promise<void>;
  /**
   * The attempt failed: the task waits until `retryAt` (ms since the epoch) to run again, or, with `null`,
   * is `failed` for good (until `retry`).
   */
  fail(lease: SaveTaskLease, error: string, retryAt: number | null): Promise<void>;
  /** Tasks, newest first. */
  list(options?: SaveQueueListOptions): Promise<SaveTask[]>;
  /** Makes a failed task of `path` pending again, with its attempts reset; false when there is none. */
  retry(path: string): Promise<boolean>;
  close(): Promise<void>;
}
