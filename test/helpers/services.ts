import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import pg from 'pg';

/** Base URL of the PostgreSQL the tests use (database `test`); override with LAZY_CONTENT_TEST_POSTGRES. */
export const POSTGRES_URL = process.env.LAZY_CONTENT_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.LAZY_CONTENT_TEST_REDIS ?? 'redis://127.0.0.1:6379';

/** Set by .ci/run: a service that is not reachable fails the run instead of skipping its tests. */
const required = process.env.LAZY_CONTENT_REQUIRE_SERVICES === '1';

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port), timeout: 1000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
  });
}

/**
 * Whether a service can be used. When it cannot: under LAZY_CONTENT_REQUIRE_SERVICES=1 this throws (the run
 * fails); otherwise it prints a notice and the caller skips its tests.
 */
export async function serviceAvailable(name: 'PostgreSQL' | 'Redis', url: string): Promise<boolean> {
  if (await reachable(url)) return true;
  const message = `${name} is not reachable at ${new URL(url).host}`;
  if (required) throw new Error(`${message}, and LAZY_CONTENT_REQUIRE_SERVICES=1 requires it`);
  console.warn(`NOTICE: ${message}: its tests are skipped (set LAZY_CONTENT_REQUIRE_SERVICES=1 to make this a failure)`);
  return false;
}

export const postgresAvailable = () => serviceAvailable('PostgreSQL', POSTGRES_URL);
export const redisAvailable = () => serviceAvailable('Redis', REDIS_URL);

/**
 * A PostgreSQL schema of its own for one test file, so that test files running in parallel never see each
 * other's rows. Returns a connection URL whose search_path is that schema, and a function that drops it.
 */
export async function postgresSchema(label: string): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `lc_test_${label.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.end();
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await c.end();
    },
  };
}
