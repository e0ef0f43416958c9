import { describe, expect, it } from 'vitest';
import { backoffCeiling, jitteredBackoff } from '../../shared/src/backoff.js';

describe('backoff', () => {
  it('doubles from the base up to the cap, and a long outage stays at the cap', () => {
    const backoff = { baseMs: 500, maxMs: 30_000 };
    expect([0, 1, 2, 3, 6, 7, 1_000].map((attempt) => backoffCeiling(attempt, backoff))).toEqual([500, 1_000, 2_000, 4_000, 30_000, 30_000, 30_000]);
  });

  it('jitters over the whole window below the ceiling', () => {
    const backoff = { baseMs: 1_000, maxMs: 30_000 };
    expect(jitteredBackoff(3, { ...backoff, random: () => 0 })).toBe(0);
    expect(jitteredBackoff(3, { ...backoff, random: () => 0.5 })).toBe(4_000);
  });
});
