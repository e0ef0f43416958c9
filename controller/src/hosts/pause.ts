import { and, eq, inArray } from 'drizzle-orm';
import { ACTIVE_ROLLOUT_STATES } from '../../../shared/src/rollout-api.js';
import type { ControllerDeps } from '../deps.js';
import { appendEvent } from '../events.js';
import type { LifecycleRefusal } from './lifecycle.js';

/**
 * Pausing a host: "leave it alone for now" (a machine being debugged, a disk being replaced).
 * While paused, no rollout issues it a new manifest: it stays pending in its wave, and the wave
 * waits for it (shown as paused) — it is neither failed nor skipped, so the failure threshold is
 * untouched, but a rollout with a progress deadline halts when nothing else moves. Resuming lets
 * the rollout issue it at once. Setting its desired state by hand needs `force`. What the host
 * already holds is unchanged: its agent keeps (and renewal keeps re-signing) its current manifest,
 * and a rollback still returns it to what it ran before the rollout.
 */
export async function setHostPaused(
  deps: Pick<ControllerDeps, 'store' | 'clock' | 'rollouts'>,
  name: string,
  paused: boolean,
  actor: string,
): Promise<{ ok: true; changed: boolean } | LifecycleRefusal> {
  const { store } = deps;
  const { hosts, rolloutHosts, rollouts } = store.t;
  const outcome = await store.transaction(async (tx): Promise<{ ok: true; changed: boolean; rollouts: string[] } | LifecycleRefusal> => {
    const [host] = await tx.select({ paused: hosts.paused }).from(hosts).where(eq(hosts.name, name)).limit(1);
    if (!host) return { ok: false, status: 404, code: 'unknown-host', message: `no host named ${JSON.stringify(name)}` };
    if (host.paused === paused) return { ok: true, changed: false, rollouts: [] };
    await tx.update(hosts).set({ paused }).where(eq(hosts.name, name));
    await appendEvent(store, { host: name, at: deps.clock.now(), kind: paused ? 'host-paused' : 'host-resumed', actor, data: {} });
    const active = await tx
      .select({ id: rollouts.id })
      .from(rolloutHosts)
      .innerJoin(rollouts, eq(rollouts.id, rolloutHosts.rolloutId))
      .where(and(eq(rolloutHosts.host, name), inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])));
    return { ok: true, changed: true, rollouts: active.map((row) => row.id) };
  });
  if (!outcome.ok) return outcome;
  // A resumed host may be the one its wave waits for: advance now rather than at the next timer tick.
  if (!paused) for (const id of outcome.rollouts) await deps.rollouts.wake(id);
  return { ok: true, changed: outcome.changed };
}
