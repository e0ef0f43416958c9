import { sql, type SQL } from 'drizzle-orm';
import type { RolloutRollbackState } from '../../../shared/src/rollout-api.js';
import { IN_FLIGHT_MEMBER_STATES } from '../rollouts/transitions.js';

const ROLLBACK_IN_FLIGHT: RolloutRollbackState = 'issued';

/**
 * Deletes at most `limit` manifests issued before `cutoff` that nothing can need any more, returning
 * one row per manifest deleted. Every renewal is a new row, so without this a host gains one a day
 * for ever. A manifest is kept, however old, when it is:
 *
 * - the host's highest version: the next manifest is numbered above it, and a restored controller
 *   measures an agent's watermark against it (manifests/issue.ts, hosts/watermark.ts);
 * - the host's desired one, which agents fetch and renewals re-sign (normally the highest);
 * - the version the host last reported on: the one it holds, whose reports must still find the
 *   rollout that issued it;
 * - issued by an unfinished rollout for this host, or any renewal of such a manifest: a report on
 *   whichever of them the host holds finds its rollout member through that row (rollouts/members.ts
 *   reportedMembers);
 * - the version a finished rollout still awaits the host's result (or rollback) on. Only that one:
 *   renewals of it would otherwise be kept for as long as a host that never returns stays in flight;
 * - the newest one carrying a release statement for a system a rollout may send the host back to
 *   (a member's previous system): a rollback looks for what authorises that system there too
 *   (manifests/statements.ts authoriseStatement).
 */
export function pruneManifests(cutoff: number, limit: number): SQL {
  const inFlight = sql.join(
    [...IN_FLIGHT_MEMBER_STATES].map((state) => sql`${state}`),
    sql`, `,
  );
  return sql`delete from manifests where (host, version) in (
  select m.host, m.version from manifests m join hosts h on h.name = m.host
  where m.issued_at < ${cutoff}
    and m.version is distinct from h.desired_version
    and m.version is distinct from h.reported_version
    and m.version < (select max(l.version) from manifests l where l.host = m.host)
    and not exists (
      select 1 from rollout_hosts rh join rollouts r on r.id = rh.rollout_id
      where rh.rollout_id = m.rollout_id and rh.host = m.host
        and (r.finished_at is null
          or (rh.state in (${inFlight}) and m.version = rh.manifest_version)
          or (rh.rollback_state = ${ROLLBACK_IN_FLIGHT} and m.version = rh.rollback_version)))
    and not (
      m.statement is not null
      and exists (select 1 from rollout_hosts rh where rh.host = m.host and rh.previous_system = m.store_path)
      and m.version = (select max(s.version) from manifests s where s.host = m.host and s.store_path = m.store_path and s.statement is not null))
  order by m.issued_at limit ${limit})
  returning host`;
}
