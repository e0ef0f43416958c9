import type { HostDiff } from '../../../shared/src/closure-api.js';
import { ClosureCache } from '../cache/closure.js';
import type { ControllerDeps } from '../deps.js';
import { hostStatus } from '../hosts/status.js';
import { readHostDiff } from './release-diff.js';

export type HostDiffOutcome = { ok: true; diff: HostDiff } | { ok: false; status: 404 | 409; code: string; message: string };

/**
 * A host's diff from what it runs to `target` (by default its desired system): for a drifted host,
 * what it runs against what it should run.
 */
export async function hostDiffFor(deps: Pick<ControllerDeps, 'store' | 'presence' | 'cache'>, name: string, target?: string): Promise<HostDiffOutcome> {
  const status = await hostStatus(deps.store, deps.presence, name);
  if (!status) return { ok: false, status: 404, code: 'unknown-host', message: `no host named ${JSON.stringify(name)}` };
  if (!deps.cache.configured) {
    return { ok: false, status: 409, code: 'no-binary-cache', message: 'the controller reads no binary cache (config "caches"), so it cannot diff closures' };
  }
  const to = target ?? status.desired?.storePath;
  if (!to) return { ok: false, status: 409, code: 'no-desired-system', message: `host ${name} has no desired system; name one with ?target=/nix/store/…` };
  const diff = await readHostDiff(new ClosureCache(deps.cache), { host: name, current: status.currentSystem, target: to, drifted: status.drift !== null });
  return { ok: true, diff };
}
