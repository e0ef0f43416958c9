import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');

describe('the summary line', () => {
  it('counts a suite that failed in beforeAll as failed, and names it', () => {
    const run = spawnSync(
      process.execPath,
      [
        'node_modules/vitest/vitest.mjs', 'run', '--config', 'test/reporter/fixtures/vitest.config.ts',
      ],
      { cwd: REPO, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CI: '1' } },
    );
    expect(run.status).not.toBe(0);
    expect(run.stdout).toMatch(/failed outside any test \(set-up, teardown or import\): .*broken-setup\.fixture\.ts > a suite whose set-up throws/);
    expect(run.stdout).toMatch(/\ntests: 1 passed, 1 failed, 1 skipped\n/);
  });
});
