import { type MigrationInterface, type QueryRunner, TableColumn } from 'typeorm';
import { TABLE } from '../entities.js';

/**
 * `max_age_ms` on catalog entries: a file that changes upstream under the same path (a repository's
 * `repomd.xml`) is served fresh: fetched again once its cached copy is older than this, and never saved.
 */
export class LazyContentEntryMaxAge1764547200000 implements MigrationInterface {
  name = 'LazyContentEntryMaxAge1764547200000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(TABLE.entry, new TableColumn({ name: 'max_age_ms', type: 'bigint', isNullable: true }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn(TABLE.entry, 'max_age_ms');
  }
}
