import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { catalogEntities, TABLE } from './entities.js';
import { catalogMigrations } from './migrations/index.js';

export interface DatabaseSettings {
  /** `postgres://…` / `postgresql://…`, `sqlite:<file>`, or a plain file path for SQLite. */
  url?: string | undefined;
  /** A DataSource the app already has, with `catalogEntities` among its entities. */
  dataSource?: DataSource | undefined;
  /** Run the catalog's migrations at start-up (for a DataSource of the app: only when it lists `catalogMigrations`). */
  runMigrations: boolean;
  /** Folder for the default SQLite file. */
  dataDir: string;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** Opens (or adopts) the catalog's DataSource and brings its schema up to date. */
export async function openDatabase(settings: DatabaseSettings): Promise<{ dataSource: DataSource; owned: boolean }> {
  if (settings.dataSource) {
    const ds = settings.dataSource;
    if (!ds.isInitialized) await ds.initialize();
    if (!ds.hasMetadata(catalogEntities[0]!)) {
      throw new Error(
        'lazy-content: the DataSource given as "catalog.dataSource" does not know the catalog tables: add ...catalogEntities to its "entities" (and catalogMigrations to its "migrations")',
      );
    }
    if (settings.runMigrations) await ds.runMigrations({ transaction: 'each' });
    await assertSchema(ds);
    return { dataSource: ds, owned: false };
  }

  const url = settings.url ?? path.join(settings.dataDir, 'catalog.sqlite');
  const ds = isPostgresUrl(url)
    ? new DataSource({
        type: 'postgres',
        url,
        entities: catalogEntities,
        migrations: catalogMigrations,
        migrationsTableName: 'lazy_content_migrations',
        synchronize: false,
        connectTimeoutMS: 5000,
        // Fail fast while the database is away: a request gets 503 instead of hanging.
        extra: { max: 10, connectionTimeoutMillis: 5000, query_timeout: 15_000 },
        poolErrorHandler: () => undefined,
      })
    : await sqliteDataSource(url.replace(/^sqlite:/, ''));
  await ds.initialize();
  try {
    if (settings.runMigrations) await ds.runMigrations({ transaction: 'each' });
    await assertSchema(ds);
  } catch (err) {
    await ds.destroy().catch(() => undefined);
    throw err;
  }
  return { dataSource: ds, owned: true };
}

async function sqliteDataSource(file: string): Promise<DataSource> {
  if (file !== ':memory:') await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  return new DataSource({
    type: 'better-sqlite3',
    database: file,
    entities: catalogEntities,
    migrations: catalogMigrations,
    migrationsTableName: 'lazy_content_migrations',
    synchronize: false,
    enableWAL: true,
    // Wait for another process's write lock instead of failing at once (a worker process shares the file).
    timeout: 10_000,
  });
}

async function assertSchema(ds: DataSource): Promise<void> {
  const runner = ds.createQueryRunner();
  try {
    if (!(await runner.hasTable(TABLE.entry))) {
      throw new Error(
        'lazy-content: the catalog tables do not exist: run the migrations (option catalog.runMigrations, or `lazy-content migrate`)',
      );
    }
  } finally {
    await runner.release();
  }
}
