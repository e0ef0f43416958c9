import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Lab tests mostly wait on agents and Nix; the default (cores - 1 = one worker here) runs every file in turn.
    maxWorkers: 2,
    // expect.poll's 1 s default is too short for real agents and Nix on a loaded 2-core machine (seen flaky).
    expect: { poll: { timeout: 30_000 } },
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
