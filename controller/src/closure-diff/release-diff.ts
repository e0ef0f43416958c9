import type { FleetDiff, HostDiff } from '../../../shared/src/closure-api.js';
import type { ClosureCache } from '../cache/closure.js';
import { hostDiff } from './diff.js';
import { fleetDiff } from './fleet.js';

export interface DiffTarget {
  host: string;
  /** What the host runs now (its last report); null when unknown. */
  current: string | null;
  target: string;
  drifted: boolean;
}

/** One host's diff, read from the cache. */
export async function readHostDiff(closures: ClosureCache, target: DiffTarget): Promise<HostDiff> {
  const [targetClosure, currentClosure] = await Promise.all([
    closures.get(target.target),
    target.current && target.current !== target.target ? closures.get(target.current) : Promise.resolve(null),
  ]);
  return hostDiff({ ...target, targetClosure, currentClosure });
}

/**
 * Every host's diff and the fleet's view of them. Hosts that move from the same system to the
 * same target share one computation (in a fleet most do); each distinct closure is read once.
 */
export async function readFleetDiff(closures: ClosureCache, targets: readonly DiffTarget[]): Promise<FleetDiff> {
  const byPair = new Map<string, Promise<HostDiff>>();
  const diffs = await Promise.all(
    targets.map(async (target) => {
      const key = `${target.current ?? ''}\0${target.target}`;
      let shared = byPair.get(key);
      if (!shared) {
        shared = readHostDiff(closures, { ...target, drifted: false });
        byPair.set(key, shared);
      }
      return { ...(await shared), host: target.host, drifted: target.drifted };
    }),
  );
  return fleetDiff(diffs);
}
