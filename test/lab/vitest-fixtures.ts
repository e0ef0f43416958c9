import { inject } from 'vitest';
import { ensureFixtures } from './fixture-cache.js';
import type { LabFixtures } from './fixtures.js';

/**
 * The standard lab fixtures inside a vitest test file: those the globalSetup provided, or,
 * when it is not configured, ones built (once for all workers) on first use.
 */
export async function labFixtures(): Promise<LabFixtures> {
  return inject('shoalLabFixtures') ?? (await ensureFixtures());
}
