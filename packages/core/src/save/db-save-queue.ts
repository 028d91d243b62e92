import type { DataSource } from 'typeorm';
import { pathHash } from '../catalog/catalog.js';
import { TABLE } from '../catalog/entities.js';
import type { SaveQueue, SaveQueueListOptions, SaveTask, SaveTaskLease, SaveTaskState } from './save-queue.js';

const COLUMNS =
  '"id", "path", "state", "attempts", "next_attempt_at", "last_error", "lease_owner", "lease_expires_at", "created_at", "updated_at"';

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function taskOf(row: Record<string, unknown>): SaveTask {
  return {
    id: String(row.id),
    path: String(row.path),
    state: row.state as SaveTaskState,
    attempts: num(row.attempts),
    nextAttemptAt: num(row.next_attempt_at),
    lastError: (row.last_error ?? null) as string | null,
    leaseOwner: (row.lease_owner ?? null) as string | null,
    leaseExpiresAt: numOrNull(row.lease_expires_at),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}

/**
 * The save queue in the catalog's database (table `lazy_content_save_task`): the embedded default, and what
 * several processes share through one PostgreSQL. Each step is one statement, atomic on its own: a task is
 * claimed with `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING`, which PostgreSQL runs with
 * `FOR UPDATE SKIP LOCKED` so that concurrent workers never take the same task, and SQLite runs under its
 * single writer lock.
 */
export class DatabaseSaveQueue implements SaveQueue {
  private readonly pg: boolean;

  constructor(
    private readonly dataSource: DataSource,
    private readonly now: () => number = Date.now,
  ) {
    this.pg = dataSource.options.type === 'postgres';
  }

  /** `$1`, `$2`… on PostgreSQL, `?` on SQLite. */
  private sql(text: string): string {
    if (!this.pg) return text.replace(/\$\d+/g, '?');
    return text;
  }

  private async query(text: string, params: unknown[]): Promise<Array<Record<string, unknown>>> {
    // SQLite's `?` placeholders are positional: repeat the parameters in the order `$n` appear.
    if (!this.pg) {
      const order = [...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1]) - 1);
      params = order.map((i) => params[i]);
    }
    const result = (await this.dataSource.query(this.sql(text), params)) as unknown;
    // TypeORM's PostgreSQL driver answers UPDATE/DELETE … RETURNING with [rows, affected count].
    if (this.pg && Array.isArray(result) && result.length === 2 && Array.isArray(result[0]) && typeof result[1] === 'number') {
      return result[0] as Array<Record<string, unknown>>;
    }
    return Array.isArray(result) ? (result as Array<Record<string, unknown>>) : [];
  }

  async schedule(path: string, options: { delayMs?: number } = {}): Promise<boolean> {
    const now = this.now();
    const rows = await this.query(
      `INSERT INTO "${TABLE.saveTask}" ("path", "path_hash", "state", "attempts", "next_attempt_at", "created_at", "updated_at")
       VALUES ($1, $2, 'pending', 0, $3, $4, $4)
       ON CONFLICT ("path_hash") WHERE "state" IN ('pending', 'running') DO NOTHING
       RETURNING "id"`,
      [path, pathHash(path), now + (options.delayMs ?? 0), now],
    );
    return rows.length > 0;
  }

  async take(owner: string, leaseMs: number): Promise<SaveTaskLease | null> {
    const now = this.now();
    const rows = await this.query(
      `UPDATE "${TABLE.saveTask}"
       SET "state" = 'running', "lease_owner" = $1, "lease_expires_at" = $2, "attempts" = "attempts" + 1, "updated_at" = $3
       WHERE "id" = (
         SELECT "id" FROM "${TABLE.saveTask}"
         WHERE ("state" = 'pending' AND "next_attempt_at" <= $3) OR ("state" = 'running' AND "lease_expires_at" < $3)
         ORDER BY "next_attempt_at", "id" LIMIT 1${this.pg ? ' FOR UPDATE SKIP LOCKED' : ''}
       )
       RETURNING ${COLUMNS}`,
      [owner, now + leaseMs, now],
    );
    const row = rows[0];
    return row ? { task: taskOf(row), owner } : null;
  }

  async renew(lease: SaveTaskLease, leaseMs: number): Promise<boolean> {
    const now = this.now();
    const rows = await this.query(
      `UPDATE "${TABLE.saveTask}" SET "lease_expires_at" = $1, "updated_at" = $2
       WHERE "id" = $3 AND "state" = 'running' AND "lease_owner" = $4 RETURNING "id"`,
      [now + leaseMs, now, Number(lease.task.id), lease.owner],
    );
    return rows.length > 0;
  }

  async complete(lease: SaveTaskLease): Promise<void> {
    await this.query(
      `UPDATE "${TABLE.saveTask}" SET "state" = 'done', "lease_owner" = NULL, "lease_expires_at" = NULL, "last_error" = NULL, "updated_at" = $1
       WHERE "id" = $2 AND "state" = 'running' AND "lease_owner" = $3`,
      [this.now(), Number(lease.task.id), lease.owner],
    );
  }

  async fail(lease: SaveTaskLease, error: string, retryAt: number | null): Promise<void> {
    await this.query(
      `UPDATE "${TABLE.saveTask}"
       SET "state" = $1, "next_attempt_at" = $2, "last_error" = $3, "lease_owner" = NULL, "lease_expires_at" = NULL, "updated_at" = $4
       WHERE "id" = $5 AND "state" = 'running' AND "lease_owner" = $6`,
      [retryAt === null ? 'failed' : 'pending', retryAt ?? this.now(), error.slice(0, 2000), this.now(), Number(lease.task.id), lease.owner],
    );
  }

  async list(options: SaveQueueListOptions = {}): Promise<SaveTask[]> {
    const limit = Math.max(1, Math.min(options.limit ?? 100, 10_000));
    const rows = options.state
      ? await this.query(`SELECT ${COLUMNS} FROM "${TABLE.saveTask}" WHERE "state" = $1 ORDER BY "id" DESC LIMIT ${limit}`, [options.state])
      : await this.query(`SELECT ${COLUMNS} FROM "${TABLE.saveTask}" ORDER BY "id" DESC LIMIT ${limit}`, []);
    return rows.map(taskOf);
  }

  async retry(path: string): Promise<boolean> {
    const now = this.now();
    // Not if another task of the path is open already (the partial unique index would refuse it anyway).
    const rows = await this.query(
      `UPDATE "${TABLE.saveTask}" SET "state" = 'pending', "attempts" = 0, "next_attempt_at" = $1, "updated_at" = $1
       WHERE "id" = (SELECT "id" FROM "${TABLE.saveTask}" WHERE "path_hash" = $2 AND "state" = 'failed' ORDER BY "id" DESC LIMIT 1)
       AND NOT EXISTS (SELECT 1 FROM "${TABLE.saveTask}" WHERE "path_hash" = $2 AND "state" IN ('pending', 'running'))
       RETURNING "id"`,
      [now, pathHash(path)],
    );
    return rows.length > 0;
  }

  /** Removes finished (`done`) tasks older than `olderThanMs`; returns how many. */
  async prune(olderThanMs: number): Promise<number> {
    const rows = await this.query(`DELETE FROM "${TABLE.saveTask}" WHERE "state" = 'done' AND "updated_at" < $1 RETURNING "id"`, [
      this.now() - olderThanMs,
    ]);
    return rows.length;
  }

  async close(): Promise<void> {
    // The DataSource belongs to the catalog, which closes it.
  }
}
