import { and, desc, eq, lt } from 'drizzle-orm';
import type { HostDrift } from '../../../shared/src/operator-api.js';
import { phaseIn, TERMINAL_PHASES } from '../../../shared/src/phases.js';
import { iso } from '../clock.js';
import type { Store } from '../db/store.js';

/** What drift detection needs of a host's row and its desired manifest. */
export interface DriftInput {
  name: string;
  phase: string | null;
  currentSystem: string | null;
  reportedVersion: number | null;
  desired: { version: number; storePath: string } | null;
}

/** Reports read per query while looking back for the last terminal one. */
const PAGE = 100;

/**
 * Whether a host runs something Shoal did not put there. Only an idle host that reports about its
 * desired manifest can drift: while a manifest is being carried out, or one is newer than what the
 * host reported about, the difference is Shoal's own doing. The agent reports `reconciled` when it
 * starts and when the running system changes under it; a terminal report (healthy, rolled-back,
 * failed, …) records what an activation left it on. Drift is a `reconciled` report naming another
 * system than that.
 */
export async function hostDrift(store: Store, host: DriftInput): Promise<HostDrift | null> {
  const { desired, currentSystem } = host;
  if (host.phase !== 'reconciled' || !desired || !currentSystem) return null;
  if (currentSystem === desired.storePath || host.reportedVersion !== desired.version) return null;
  const { reports } = store.t;
  // Newest first back to the last terminal report; the bodies are parsed here rather than in SQL,
  // whose JSON operators differ between the engines. Only drifting hosts get here, and a host sends
  // few reports between activations (at start, and when its system changes).
  let detectedAt: number | null = null;
  let before: number | null = null;
  for (;;) {
    const page = await store.q
      .select({ seq: reports.seq, receivedAt: reports.receivedAt, body: reports.body })
      .from(reports)
      .where(before === null ? eq(reports.host, host.name) : and(eq(reports.host, host.name), lt(reports.seq, before)))
      .orderBy(desc(reports.seq))
      .limit(PAGE);
    for (const report of page) {
      const body = report.body as { phase?: unknown; currentSystem?: unknown };
      const system = typeof body.currentSystem === 'string' ? body.currentSystem : null;
      if (phaseIn(TERMINAL_PHASES, body.phase)) {
        // The system the last activation left the host on; the same one running now is no drift.
        if (system === null || system === currentSystem) return null;
        return { running: currentSystem, expected: system, detectedAt: iso(detectedAt ?? 0) };
      }
      if (system === currentSystem) detectedAt = Math.min(detectedAt ?? report.receivedAt, report.receivedAt);
    }
    // No activation ever ended: nothing says what the host should be running.
    if (page.length < PAGE) return null;
    before = page[page.length - 1]!.seq;
  }
}
