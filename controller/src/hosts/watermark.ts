import { and, eq, max, sql } from 'drizzle-orm';
import { perHandle } from '../db/per-handle.js';
import type { Logger } from '../../../shared/src/logger.js';
import { MAX_VERSION_STEP, type Action, type AgentWatermark } from '../../../shared/src/protocol.js';
import type { ManifestRow } from '../db/schema.js';
import type { Queryable, Store, Tables } from '../db/store.js';
import { appendEvent } from '../events.js';
import { issueInTransaction, published, type IssueDeps } from '../manifests/issue.js';
import { renewalAuthority } from '../manifests/renew.js';

/**
 * What the controller does with the watermark an agent reports when it logs in (the highest
 * manifest version and floor it accepted). Normally the agent is at or below the controller's
 * desired version and nothing happens. An agent *above* it means this controller forgot manifests
 * it issued: it was restored from an older backup (or its database rebuilt). Versions it would
 * issue next would be refused as replays, so it continues above the agent's:
 *
 * - `reissued`: the desired state was set by this process (after the restore) and the host has not
 *   answered it, or it carries the very version the agent accepted for another system (this
 *   controller re-used a number the lost one had used): it is signed again, unchanged, at the
 *   version above the agent's, and announced.
 * - `advanced`: otherwise the desired state is the backup's, which the host already went past; re-
 *   signing it would quietly move the host back. The desired pointer moves to the agent's version
 *   (no manifest there: nothing is desired until an operator sets or rolls out something), so the
 *   next manifest goes above it and renewal leaves the host alone.
 * - `ignored`: more than MAX_VERSION_STEP above the highest version this controller ever signed for
 *   the host. Agents refuse steps that large themselves, so an honest host cannot need it, and a
 *   host must not be able to make the controller spend its version space: not believed, logged.
 */

export type WatermarkOutcome = 'none' | 'reissued' | 'advanced' | 'ignored';

export interface WatermarkDeps extends IssueDeps {
  store: Store;
  logger: Logger;
  /** When this process started: desired states issued since are intent set after any restore. */
  startedAt: number;
}

export async function noteWatermark(deps: WatermarkDeps, host: string, watermark: AgentWatermark | undefined): Promise<WatermarkOutcome> {
  if (watermark === undefined) return 'none';
  const { store } = deps;
  const { hosts, manifests, rolloutHosts } = store.t;
  const reported = watermark.highestVersion;
  // Every login carries a watermark and nearly every one is at or below what we issued: decided
  // from committed data without a write transaction. The transaction below checks again.
  if (!(await mayMoveVersions(store, host, watermark))) return 'none';
  const now = deps.clock.now();
  let announce: ManifestRow | null = null;
  const outcome = await store.transaction(async (tx): Promise<WatermarkOutcome> => {
    announce = null;
    const [row] = await tx.select({ desiredVersion: hosts.desiredVersion, reportedVersion: hosts.reportedVersion }).from(hosts).where(eq(hosts.name, host)).limit(1);
    if (!row) return 'none';
    const previous = row.desiredVersion ?? 0;
    const desired =
      row.desiredVersion === null
        ? undefined
        : (await tx.select().from(manifests).where(and(eq(manifests.host, host), eq(manifests.version, row.desiredVersion))).limit(1))[0];
    // The same number for another system: this controller re-issued a version the lost one had used.
    const clash = reported === previous && desired !== undefined && watermark.highestStorePath != null && desired.storePath !== watermark.highestStorePath;
    if (reported < previous || (reported === previous && !clash)) return 'none';
    const signed = (await tx.select({ version: max(manifests.version) }).from(manifests).where(eq(manifests.host, host)))[0]?.version ?? 0;
    const data = { reported, previous, floor: watermark.highestFloor };
    if (reported - signed > MAX_VERSION_STEP) {
      await appendOnce(store, host, now, { ...data, signed, then: 'ignored' });
      return 'ignored';
    }
    // A clash can only be a manifest issued since the restore (the backup's own versions are the
    // lost controller's, with the same content), so it is the operator's current intent as well.
    const unanswered = desired !== undefined && (clash || ((row.reportedVersion ?? 0) < desired.version && desired.issuedAt >= deps.startedAt));
    if (unanswered) {
      const authority = await renewalAuthority(deps, desired, now);
      if (typeof authority !== 'string') {
        const issued = await issueInTransaction(
          store,
          deps.signer,
          now,
          deps.manifestTtlMs,
          { host, storePath: desired.storePath, action: desired.action, rolloutId: desired.rolloutId, authority },
          { kind: 'manifest-renewed', actor: 'controller' },
          reported,
        );
        announce = issued;
        // A rollout waits for a report about the version it issued: it is this one now.
        await tx
          .update(rolloutHosts)
          .set({ manifestVersion: issued.version })
          .where(and(eq(rolloutHosts.host, host), eq(rolloutHosts.manifestVersion, desired.version)));
        await tx
          .update(rolloutHosts)
          .set({ rollbackVersion: issued.version })
          .where(and(eq(rolloutHosts.host, host), eq(rolloutHosts.rollbackVersion, desired.version)));
        await appendEvent(store, { host, at: now, kind: 'version-reported', actor: `agent:${host}`, data: { ...data, then: 'reissued', version: issued.version } });
        return 'reissued';
      }
    }
    await tx.update(hosts).set({ desiredVersion: reported }).where(eq(hosts.name, host));
    await appendEvent(store, { host, at: now, kind: 'version-reported', actor: `agent:${host}`, data: { ...data, then: 'advanced' } });
    return 'advanced';
  });
  if (announce !== null) deps.bus.publish(published(announce));
  if (outcome === 'ignored') {
    deps.logger.warn({ host, reported, floor: watermark.highestFloor, maxStep: MAX_VERSION_STEP }, 'host reported an accepted version far above any this controller signed; not believed');
  } else if (outcome !== 'none') {
    deps.logger.warn({ host, reported, floor: watermark.highestFloor, then: outcome }, 'host accepted a higher manifest version than this controller knows (restored from a backup?); continuing above it');
  }
  return outcome;
}

const desiredQuery = perHandle((q: Queryable, { hosts, manifests }: Tables) =>
  q
    .select({ desiredVersion: hosts.desiredVersion, desiredStorePath: manifests.storePath })
    .from(hosts)
    .leftJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)))
    .where(eq(hosts.name, sql.placeholder('host')))
    .prepare('hosts_watermark_desired'),
);

/** Whether the watermark is above the desired version, or at it for another system: the cases that do something. */
async function mayMoveVersions(store: Store, host: string, watermark: AgentWatermark): Promise<boolean> {
  const [row] = await desiredQuery(store).execute({ host });
  if (!row) return false;
  const previous = row.desiredVersion ?? 0;
  const reported = watermark.highestVersion;
  if (reported !== previous) return reported > previous;
  return row.desiredStorePath !== null && watermark.highestStorePath != null && row.desiredStorePath !== watermark.highestStorePath;
}

/** A host that keeps reconnecting with the same unbelievable claim is written down once. */
async function appendOnce(store: Store, host: string, at: number, data: { reported: number; then: string } & Record<string, unknown>): Promise<void> {
  const { events } = store.t;
  // Such events are rare (a restore, or a host lying): compared here rather than with the engines' different JSON operators.
  const earlier = await store.q
    .select({ data: events.data })
    .from(events)
    .where(and(eq(events.host, host), eq(events.kind, 'version-reported')));
  const said = earlier.some((row) => {
    const seen = row.data as { reported?: unknown; then?: unknown } | null;
    return seen?.reported === data.reported && seen.then === 'ignored';
  });
  if (!said) await appendEvent(store, { host, at, kind: 'version-reported', actor: `agent:${host}`, data });
}
