import { afterEach, beforeEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../controller/src/db/store.js';
import { postgresTestDatabase } from './postgres-database.js';
import { testEngine } from './test-engine.js';

export interface OpenedStore {
  store: Store;
  /** What `openStore` was given: another store on the same database opens it again (PostgreSQL only: one SQLite store per file per process). */
  database: string;
  dispose(): Promise<void>;
}

export interface StoreEngine {
  name: 'sqlite' | 'postgres';
  open(): Promise<OpenedStore>;
}

/** The engines a shared case suite runs against: a fresh SQLite file, or a fresh PostgreSQL database on this process's test server. */
const engines: StoreEngine[] = [
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'shoal-store-'));
      const database = join(dir, 'controller.sqlite');
      const store = await openStore({ database });
      return {
        store,
        database,
        async dispose() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    async open() {
      const database = await postgresTestDatabase();
      const store = await openStore({ database: database.url, replicaId: 'test' });
      return {
        store,
        database: database.url,
        async dispose() {
          await store.close();
          await database.release();
        },
      };
    },
  },
];

/**
 * What `describe.each(storeEngines)` runs: the engine of this run (test-engine.ts). vitest.config.ts
 * runs the suite once per engine, so each case runs once on each, as every other controller test does.
 */
export const storeEngines: StoreEngine[] = engines.filter((engine) => engine.name === testEngine());

/** Registers hooks that open a fresh store of `engine` before each test (handed to `use`) and dispose of it after. */
export function freshStorePerTest(engine: StoreEngine, use: (store: Store) => void): void {
  let opened: OpenedStore | null = null;
  beforeEach(async () => {
    opened = await engine.open();
    use(opened.store);
  });
  afterEach(async () => {
    await opened?.dispose();
    opened = null;
  });
}
