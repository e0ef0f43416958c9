import { join } from 'node:path';
import { postgresTestDatabase } from './postgres-database.js';

export type TestEngine = 'sqlite' | 'postgres';

/**
 * The engine the controller suite runs on (issue 16: one case suite, both engines): what
 * SHOAL_TEST_ENGINE names — vitest.config.ts sets it for its postgres project — else SQLite.
 */
export function testEngine(env: NodeJS.ProcessEnv = process.env): TestEngine {
  const name = env.SHOAL_TEST_ENGINE ?? 'sqlite';
  if (name === 'sqlite' || name === 'postgres') return name;
  throw new Error(`SHOAL_TEST_ENGINE=${name}: expected sqlite or postgres`);
}

/** True in the run on PostgreSQL: for the few cases about SQLite itself, which skip there and say why. */
export const onPostgres = testEngine() === 'postgres';

export interface TestDatabase {
  /** What openStore / startController's dbFile takes: a file path or a postgres:// URL. */
  database: string;
  /** Gives a PostgreSQL database up after the test: recycled or dropped (its SQLite file goes with the test's directory). */
  release(): Promise<void>;
}

/** A fresh, migrated database of the test engine: a SQLite file in `dir`, or a copy of the migrated template on this run's PostgreSQL server. */
export async function testDatabase(dir: string): Promise<TestDatabase> {
  if (!onPostgres) return { database: join(dir, 'controller.sqlite'), release: async () => undefined };
  const database = await postgresTestDatabase();
  return { database: database.url, release: () => database.release() };
}
