import { and, eq, max, sql } from 'drizzle-orm';
import type { Logger } from '../../../shared/src/logger.js';
import { MAX_VERSION_STEP, type Action, type AgentWatermark } from '../../../shared/src/protocol.js';
import { hosts, manifests, type ManifestRow } from '../db/schema.js';
import { appendEvent } from '../events.js';
import { legacyDb } from '../db/sqlite-store.js';
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
  logger: Logger;
  /** When this process started: desired states issued since are intent set after any restore. */
  startedAt: number;
}

export async function noteWatermark(deps: WatermarkDeps, host: string, watermark: AgentWatermark | undefined): Promise<WatermarkOutcome> {
  if (watermark === undefined) return 'none';
  const reported = watermark.highestVersion;
  const now = deps.clock.now();
  let announce: ManifestRow | null = null;
  const outcome = await deps.store.transaction(async (): Promise<WatermarkOutcome> => {
    // Not on the Store yet: the synchronous handle joins the transaction just opened.
    const tx = legacyDb(deps.store);
    announce = null;
    const row = tx.select({ desiredVersion: hosts.desiredVersion, reportedVersion: hosts.reportedVersion }).from(hosts).where(eq(hosts.name, host)).get();
    if (!row) return 'none';
    const previous = row.desiredVersion ?? 0;
    const desired = row.desiredVersion === null ? undefined : tx.select().from(manifests).where(and(eq(manifests.host, host), eq(manifests.version, row.desiredVersion))).get();
    // The same number for another system: this controller re-issued a version the lost one had used.
    const clash = reported === previous && desired !== undefined && watermark.highestStorePath != null && desired.storePath !== watermark.highestStorePath;
    if (reported < previous || (reported === previous && !clash)) return 'none';
    const signed = tx.select({ version: max(manifests.version) }).from(manifests).where(eq(manifests.host, host)).get()?.version ?? 0;
    const data = { reported, previous, floor: watermark.highestFloor };
    if (reported - signed > MAX_VERSION_STEP) {
      appendOnce(tx, host, now, { ...data, signed, then: 'ignored' });
      return 'ignored';
    }
    // A clash can only be a manifest issued since the restore (the backup's own versions are the
    // lost controller's, with the same content), so it is the operator's current intent as well.
    const unanswered = desired !== undefined && (clash || ((row.reportedVersion ?? 0) < desired.version && desired.issuedAt >= deps.startedAt));
    if (unanswered) {
      const authority = await renewalAuthority(deps, desired, now);
      if (typeof authority !== 'string') {
        const reissued = await issueInTransaction(
          deps.store,
          deps.signer,
          now,
          deps.manifestTtlMs,
          { host, storePath: desired.storePath, action: desired.action, rolloutId: desired.rolloutId, authority },
          { kind: 'manifest-renewed', actor: 'controller' },
          reported,
        );
        announce = reissued;
        // A rollout waits for a report about the version it issued: it is this one now.
        tx.run(sql`update rollout_hosts set manifest_version = ${reissued.version} where host = ${host} and manifest_version = ${desired.version}`);
        tx.run(sql`update rollout_hosts set rollback_version = ${reissued.version} where host = ${host} and rollback_version = ${desired.version}`);
        appendEvent(tx, { host, at: now, kind: 'version-reported', actor: `agent:${host}`, data: { ...data, then: 'reissued', version: reissued.version } });
        return 'reissued';
      }
    }
    tx.update(hosts).set({ desiredVersion: reported }).where(eq(hosts.name, host)).run();
    appendEvent(tx, { host, at: now, kind: 'version-reported', actor: `agent:${host}`, data: { ...data, then: 'advanced' } });
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

/** A host that keeps reconnecting with the same unbelievable claim is written down once. */
function appendOnce(tx: Parameters<typeof appendEvent>[0], host: string, at: number, data: Record<string, unknown>): void {
  const said = tx.get<{ one: number } | undefined>(
    sql`select 1 as one from events where host = ${host} and kind = 'version-reported' and json_extract(data, '$.reported') = ${data.reported as number} and json_extract(data, '$.then') = 'ignored' limit 1`,
  );
  if (said === undefined) appendEvent(tx, { host, at, kind: 'version-reported', actor: `agent:${host}`, data });
}
