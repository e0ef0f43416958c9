import type { HostDrift } from '../../../shared/src/operator-api.js';
import { TERMINAL_PHASES } from '../../../shared/src/phases.js';
import { iso } from '../clock.js';
import type { Db } from '../db/open.js';
import { statement } from '../db/prepared.js';

/** What drift detection needs of a host's row and its desired manifest. */
export interface DriftInput {
  name: string;
  phase: string | null;
  currentSystem: string | null;
  reportedVersion: number | null;
  desired: { version: number; storePath: string } | null;
}

const TERMINAL_LIST = [...TERMINAL_PHASES].map((p) => `'${p}'`).join(', ');

/**
 * Whether a host runs something Shoal did not put there. Only an idle host that reports about its
 * desired manifest can drift: while a manifest is being carried out, or one is newer than what the
 * host reported about, the difference is Shoal's own doing. The agent reports `reconciled` when it
 * starts and when the running system changes under it; a terminal report (healthy, rolled-back,
 * failed, …) records what an activation left it on. Drift is a `reconciled` report naming another
 * system than that.
 */
export function hostDrift(db: Db, host: DriftInput): HostDrift | null {
  const { desired, currentSystem } = host;
  if (host.phase !== 'reconciled' || !desired || !currentSystem) return null;
  if (currentSystem === desired.storePath || host.reportedVersion !== desired.version) return null;
  const last = statement(
    db,
    `select seq, json_extract(body, '$.currentSystem') as currentSystem from reports
       where host = ? and json_extract(body, '$.phase') in (${TERMINAL_LIST}) order by seq desc limit 1`,
  ).get(host.name) as { seq: number; currentSystem: string | null } | undefined;
  // No activation ever ended: nothing says what the host should be running.
  if (!last?.currentSystem || last.currentSystem === currentSystem) return null;
  const first = statement(
    db,
    `select min(received_at) as at from reports where host = ? and seq > ? and json_extract(body, '$.currentSystem') = ?`,
  ).get(host.name, last.seq, currentSystem) as { at: number | null };
  return { running: currentSystem, expected: last.currentSystem, detectedAt: iso(first.at ?? 0) };
}
