import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { DatabaseSaveQueue, openCatalogDatabase } from '@lazy-content/core';
import { postgresAvailable, postgresSchema } from '../helpers/services.js';
import { type QueueUnderTest, saveQueueSuite } from './queue-suite.js';

async function databaseQueue(url: string, cleanup: () => Promise<void>): Promise<QueueUnderTest> {
  const { dataSource } = await openCatalogDatabase({ url, runMigrations: true, dataDir: os.tmpdir() });
  let offset = 0;
  const queue = new DatabaseSaveQueue(dataSource, () => Date.now() + offset);
  return {
    queue,
    advance: async (ms) => {
      offset += ms;
    },
    now: () => Date.now() + offset,
    close: async () => {
      await dataSource.destroy();
      await cleanup();
    },
  };
}

saveQueueSuite('database (SQLite)', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lc-queue-'));
  return databaseQueue(path.join(dir, 'catalog.sqlite'), () => fsp.rm(dir, { recursive: true, force: true }));
});

saveQueueSuite('database (PostgreSQL)', async () => {
  if (!(await postgresAvailable())) return null;
  const schema = await postgresSchema('queue');
  return databaseQueue(schema.url, schema.drop);
});
