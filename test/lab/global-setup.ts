import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { prepareFixtures, type LabFixtures } from './fixtures.js';

declare module 'vitest' {
  export interface ProvidedContext {
    shoalLabFixtures: LabFixtures;
  }
}

/**
 * vitest globalSetup: builds the standard lab systems and caches once per test run and
 * hands them to every worker (labFixtures() in vitest-fixtures.ts reads them with inject).
 * Enable with `globalSetup: ['test/lab/global-setup.ts']` in vitest.config.ts; without it,
 * labFixtures() builds them on first use instead.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-lab-fixtures-run-'));
  project.provide('shoalLabFixtures', await prepareFixtures(dir));
  return () => rm(dir, { recursive: true, force: true });
}
