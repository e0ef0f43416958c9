import { and, desc, eq } from 'drizzle-orm';
import type { HostFailure } from '../../../shared/src/operator-api.js';
import { diagnoseFailure } from '../../../shared/src/nix-failure.js';
import type { CommandFailure, Phase } from '../../../shared/src/protocol.js';
import { phaseIn, TROUBLE_PHASES } from '../../../shared/src/phases.js';
import { iso } from '../clock.js';
import type { Store } from '../db/store.js';

export type FailureReport = HostFailure;

/**
 * The host's latest failed report about `version` (any version when null), with the failing
 * command, its output tail and the classifier's plain-words diagnosis. The CLI, the API and the
 * dashboard all show this one.
 */
export async function latestFailure(store: Store, host: string, version: number | null): Promise<FailureReport | null> {
  const { events } = store.t;
  const rows = await store.q
    .select({ at: events.at, data: events.data })
    .from(events)
    .where(and(eq(events.host, host), eq(events.kind, 'report')))
    .orderBy(desc(events.id))
    .limit(50);
  for (const row of rows) {
    const data = row.data as { phase?: string; manifestVersion?: number | null; detail?: { reason?: string; failure?: CommandFailure } };
    if (!data.phase || !phaseIn(TROUBLE_PHASES, data.phase)) continue;
    if (version !== null && data.manifestVersion !== version) continue;
    const failure = data.detail?.failure ?? null;
    return {
      at: iso(row.at),
      phase: data.phase,
      version: data.manifestVersion ?? null,
      reason: data.detail?.reason ?? null,
      failure,
      diagnosis: failure ? diagnoseFailure(failure) : null,
    };
  }
  return null;
}
