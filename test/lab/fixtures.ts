import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { generateCacheKey, publishToCache, type CacheKey } from './binary-cache.js';
import { realisticPackages, REALISTIC_CHANGES } from './realistic-closure.js';
import { buildSystems, type LabSystem, type SystemSpec } from './systems.js';

/**
 * The systems most lab tests need, built once per test run. `base` is what hosts are
 * bootstrapped with; v2/v3 are good successors; each fault system fails one way;
 * `untrusted` exists only in the untrusted cache (signed by a key no host trusts).
 */
export const STANDARD_SYSTEMS = {
  base: { name: 'lab-base-1', label: 'base (generation 1)' },
  v2: { name: 'lab-good-2', label: 'good (generation 2)' },
  v3: { name: 'lab-good-3', label: 'good (generation 3)' },
  newKernel: { name: 'lab-kernel-4', label: 'good, new kernel (generation 4)', kernel: '6.12.0-lab' },
  failSwitch: { name: 'lab-fail-switch-5', fault: 'fail-switch' },
  failSwitchEarly: { name: 'lab-fail-switch-early-6', fault: 'fail-switch-early' },
  hangSwitch: { name: 'lab-hang-switch-7', fault: 'hang-switch' },
  breakNetwork: { name: 'lab-break-network-8', fault: 'break-network' },
  failHealth: { name: 'lab-fail-health-9', fault: 'fail-health' },
  untrusted: { name: 'lab-untrusted-10', label: 'good, but signed by an untrusted key' },
  // Two generations of one host with a few hundred package paths, most shared (closure diffs, preflight).
  realisticBase: { name: 'lab-realistic-11', label: 'realistic (generation 1)', packages: realisticPackages() },
  realisticNext: { name: 'lab-realistic-12', label: 'realistic (generation 2)', packages: realisticPackages({ changes: REALISTIC_CHANGES }) },
} as const satisfies Record<string, SystemSpec>;

export type StandardSystem = keyof typeof STANDARD_SYSTEMS;

export interface CacheFixture {
  /** file:// binary cache directory; serve it with serveCache(). */
  dir: string;
  key: CacheKey;
}

/** Everything a lab test needs that does not change between tests: JSON-serialisable. */
export interface LabFixtures {
  dir: string;
  systems: Record<StandardSystem, LabSystem>;
  /** Holds every standard system except `untrusted`, signed by `cache.key`. */
  cache: CacheFixture;
  /** Holds `untrusted`, signed by `untrustedCache.key` (which lab hosts do not trust). */
  untrustedCache: CacheFixture;
}

/** Builds the standard systems (one nix-build) and publishes them to both caches under `dir`. */
export async function prepareFixtures(dir: string): Promise<LabFixtures> {
  // nix copy skips paths a cache already holds, so a reused dir would keep signatures by old keys.
  for (const sub of ['cache', 'untrusted-cache', 'keys']) await rm(join(dir, sub), { recursive: true, force: true });
  const built = await buildSystems(Object.values(STANDARD_SYSTEMS), join(dir, 'systems'));
  const systems = Object.fromEntries(
    Object.entries(STANDARD_SYSTEMS).map(([key, spec]) => [key, built[spec.name]!]),
  ) as Record<StandardSystem, LabSystem>;
  // Key names differ per fixture set, so signatures left in the machine's store by earlier
  // runs can never be mistaken for this run's.
  const id = randomBytes(3).toString('hex');
  const cache: CacheFixture = { dir: join(dir, 'cache'), key: await generateCacheKey(join(dir, 'keys'), `lab-cache-${id}`) };
  const untrustedCache: CacheFixture = {
    dir: join(dir, 'untrusted-cache'),
    key: await generateCacheKey(join(dir, 'keys'), `lab-untrusted-${id}`),
  };
  const trusted = Object.entries(systems).filter(([key]) => key !== 'untrusted').map(([, s]) => s.path);
  await publishToCache({ dir: cache.dir, key: cache.key, paths: trusted });
  await publishToCache({ dir: untrustedCache.dir, key: untrustedCache.key, paths: [systems.untrusted.path] });
  return { dir, systems, cache, untrustedCache };
}
