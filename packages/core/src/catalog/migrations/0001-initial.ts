import { type MigrationInterface, type QueryRunner, Table, TableForeignKey, TableIndex } from 'typeorm';
import { TABLE } from '../entities.js';

const id = { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' as const };

/** The catalog's first schema: remotes, catalog entries, save tasks. Written with TypeORM's portable Table API. */
export class LazyContentInitial1764460800000 implements MigrationInterface {
  name = 'LazyContentInitial1764460800000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: TABLE.remote,
        columns: [
          id,
          { name: 'name', type: 'varchar', length: '200', isUnique: true },
          { name: 'tls_ca', type: 'text', isNullable: true },
          { name: 'tls_cert', type: 'text', isNullable: true },
          { name: 'tls_key_sealed', type: 'text', isNullable: true },
          { name: 'tls_verify', type: 'boolean', default: true },
          { name: 'proxy_url_sealed', type: 'text', isNullable: true },
          { name: 'headers_sealed', type: 'text', isNullable: true },
          { name: 'basic_username', type: 'varchar', length: '200', isNullable: true },
          { name: 'basic_password_sealed', type: 'text', isNullable: true },
          { name: 'connect_timeout_ms', type: 'integer' },
          { name: 'headers_timeout_ms', type: 'integer' },
          { name: 'body_idle_timeout_ms', type: 'integer' },
          { name: 'max_concurrent_downloads', type: 'integer' },
          { name: 'policy', type: 'varchar', length: '16' },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: TABLE.entry,
        columns: [
          id,
          { name: 'path', type: 'text' },
          { name: 'path_hash', type: 'varchar', length: '64' },
          { name: 'remote_id', type: 'integer' },
          { name: 'url', type: 'text' },
          { name: 'size', type: 'bigint', isNullable: true },
          { name: 'digest_algorithm', type: 'varchar', length: '16', isNullable: true },
          { name: 'digest', type: 'varchar', length: '128', isNullable: true },
          { name: 'content_type', type: 'varchar', length: '255', isNullable: true },
          { name: 'priority', type: 'integer', default: 0 },
          { name: 'saved_at', type: 'bigint', isNullable: true },
        ],
        indices: [new TableIndex({ name: 'lazy_content_entry_path_remote', columnNames: ['path_hash', 'remote_id'], isUnique: true })],
        foreignKeys: [
          new TableForeignKey({
            name: 'lazy_content_entry_remote',
            columnNames: ['remote_id'],
            referencedTableName: TABLE.remote,
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          }),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: TABLE.saveTask,
        columns: [
          id,
          { name: 'path', type: 'text' },
          { name: 'path_hash', type: 'varchar', length: '64' },
          { name: 'state', type: 'varchar', length: '16' },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'next_attempt_at', type: 'bigint' },
          { name: 'last_error', type: 'text', isNullable: true },
          { name: 'lease_owner', type: 'varchar', length: '200', isNullable: true },
          { name: 'lease_expires_at', type: 'bigint', isNullable: true },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
        indices: [
          // One open task per path: a second schedule while one is pending or running is a no-op.
          new TableIndex({
            name: 'lazy_content_save_task_open_path',
            columnNames: ['path_hash'],
            isUnique: true,
            where: "state IN ('pending', 'running')",
          }),
          new TableIndex({ name: 'lazy_content_save_task_due', columnNames: ['state', 'next_attempt_at'] }),
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable(TABLE.saveTask);
    await q.dropTable(TABLE.entry);
    await q.dropTable(TABLE.remote);
  }
}

