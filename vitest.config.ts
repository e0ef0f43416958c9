import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Left out of the postgres project: files about one engine itself, or that never open a controller
 * database (they would only run a second time). Suites of `describe.each(storeEngines)` run in
 * both projects, each on its own engine (test/controller/store-engines.ts).
 */
const NOT_ON_POSTGRES = [
  // About one engine itself: SQLite's file and pragmas; PostgreSQL's own servers, schema, outages,
  // leases and notifications (those start servers of their own and run in the sqlite project).
  'test/controller/db/open.test.ts',
  'test/controller/db/postgres-database.test.ts',
  'test/controller/db/schema-parity.test.ts',
  'test/controller/db/store-outage.test.ts',
  'test/controller/db/wal-checkpointer.test.ts',
  'test/controller/replicas/**',
  'test/controller/database-setting.test.ts',
  // Controller processes started on a state directory, whose database is the SQLite file there.
  'test/controller/main.test.ts',
  'test/controller/metrics/serve.test.ts',
  'test/controller/background-errors.test.ts',
  // No controller database at all.
  'test/controller/cache/**',
  'test/controller/closure-diff/**',
  'test/controller/config.test.ts',
  'test/controller/ttl-map.test.ts',
  'test/controller/manifests/signer.test.ts',
  'test/controller/rollouts/plan.test.ts',
  'test/controller/rollouts/transitions.test.ts',
  'test/controller/cli/key-show.test.ts',
  'test/controller/cli/release-pipeline.test.ts',
  'test/controller/cli/sse.test.ts',
  'test/controller/cli/time.test.ts',
  'test/controller/cli/windows-arg.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Lab tests mostly wait on agents and Nix; the default (cores - 1 = one worker here) runs every file in turn.
    // Shared by both projects: their files run side by side on these workers.
    maxWorkers: 2,
    // expect.poll's 1 s default is too short for real agents and Nix on a loaded 2-core machine (seen flaky).
    expect: { poll: { timeout: 30_000 } },
    reporters: ['default', './test/summary-reporter.ts'],
    // Issue 16: the controller suite is one case suite run against both engines, as Hono runs one
    // router suite against every router. The test helpers open the engine SHOAL_TEST_ENGINE names
    // (test/controller/test-engine.ts).
    projects: [
      { extends: true, test: { name: 'sqlite', include: ['test/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: ['test/controller/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...NOT_ON_POSTGRES],
          env: { SHOAL_TEST_ENGINE: 'postgres' },
          // One PostgreSQL server for the project's workers; each test controller gets a copy of its migrated template.
          globalSetup: ['test/controller/postgres-global-setup.ts'],
        },
      },
    ],
  },
});
