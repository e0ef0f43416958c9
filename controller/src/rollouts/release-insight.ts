import type { FleetDiff, PreflightResult } from '../../../shared/src/closure-api.js';
import { ClosureCache } from '../cache/closure.js';
import { readFleetDiff } from '../closure-diff/release-diff.js';
import type { ControllerDeps } from '../deps.js';
import { listHostStatuses } from '../hosts/status.js';
import { runPreflight, type PreflightTarget } from './preflight.js';

export interface ReleaseInsight {
  /** null: the controller reads no binary cache. */
  diff: FleetDiff | null;
  preflight: PreflightResult;
  drifted: string[];
}

/** What each host runs now and whether it drifted, from its reports. */
async function standing(deps: Pick<ControllerDeps, 'store' | 'presence'>, names: ReadonlySet<string>): Promise<Map<string, { current: string | null; drifted: boolean }>> {
  const result = new Map<string, { current: string | null; drifted: boolean }>();
  for (const status of await listHostStatuses(deps.store, deps.presence)) {
    if (names.has(status.name)) result.set(status.name, { current: status.currentSystem, drifted: status.drift !== null });
  }
  return result;
}

/**
 * What moving `targets` to their systems would change (per host and across the fleet), whether the
 * cache can serve it, and which of the hosts drifted. One closure read serves diff and preflight.
 */
export async function releaseInsight(
  deps: Pick<ControllerDeps, 'store' | 'presence' | 'cache' | 'clock'>,
  /** `from`: diff from this system rather than what the host runs now (a rollout's page: what the host ran before it). */
  targets: ReadonlyArray<PreflightTarget & { from?: string | null }>,
  options: { diff: boolean } = { diff: true },
): Promise<ReleaseInsight> {
  const hosts = await standing(deps, new Set(targets.map((t) => t.host)));
  const drifted = targets.filter((t) => hosts.get(t.host)?.drifted).map((t) => t.host);
  const closures = new ClosureCache(deps.cache);
  const preflight = runPreflight(deps.cache, closures, targets, () => deps.clock.now());
  const diff =
    options.diff && deps.cache.configured
      ? readFleetDiff(
          closures,
          targets.map((t) => ({ host: t.host, target: t.storePath, current: t.from ?? hosts.get(t.host)?.current ?? null, drifted: hosts.get(t.host)?.drifted ?? false })),
        )
      : Promise.resolve(null);
  return { diff: await diff, preflight: await preflight, drifted };
}
