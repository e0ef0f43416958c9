import { runBackground } from '../background.js';
import { and, eq, inArray, lte, or, sql } from 'drizzle-orm';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Envelope } from '../../../shared/src/envelope.js';
import { DEPLOYMENT_FAILURE_PHASES } from '../../../shared/src/phases.js';
import type { Logger } from '../../../shared/src/logger.js';
import type { Action } from '../../../shared/src/protocol.js';
import { hosts, manifests, type ManifestRow } from '../db/schema.js';
import type { Db } from '../db/open.js';
import { statement } from '../db/prepared.js';
import { appendEvent } from '../events.js';
import { issueInTransaction, published, type IssueDeps } from './issue.js';
import { authoriseStatement, signedByTrustedKey, type Authority } from './statements.js';

/** Signatures per transaction before yielding to the event loop, so agents keep being served during a big renewal. */
const BATCH_SIZE = 250;

/**
 * Latest manifests (desired states) that expire at or before `dueBy`, or that another controller
 * key signed: after a controller-key rotation every host must hold an assignment signed by the new
 * key before operators remove the old one from the agents, or a quiet host would refuse its own
 * desired state as signed by an unknown key.
 */
export function manifestsDueForRenewal(db: Db, dueBy: number, signingKeyId: string): ManifestRow[] {
  return db
    .select({
      host: manifests.host,
      version: manifests.version,
      storePath: manifests.storePath,
      action: manifests.action,
      rolloutId: manifests.rolloutId,
      issuedAt: manifests.issuedAt,
      expiresAt: manifests.expiresAt,
      envelope: manifests.envelope,
      statement: manifests.statement,
      statementFloor: manifests.statementFloor,
    })
    .from(hosts)
    .innerJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)))
    .where(
      and(
        or(lte(manifests.expiresAt, dueBy), sql`json_extract(${manifests.envelope}, '$.signatures[0].keyid') is not ${signingKeyId}`),
        // A host that refused or rolled back its desired state would only try the same failure again.
        sql`not (coalesce(${hosts.reportedVersion} = ${hosts.desiredVersion}, 0) and coalesce(${inArray(hosts.phase, [...DEPLOYMENT_FAILURE_PHASES])}, 0))`,
      ),
    )
    .all();
}

/** Without a statement the agent would refuse the renewal anyway. Logged once per manifest: it stays due on every pass. */
function withhold(db: Db, manifest: ManifestRow, reason: string, at: number): void {
  const said = statement(db, `select 1 from events where host = ? and kind = 'manifest-withheld' and json_extract(data, '$.version') = ? limit 1`);
  if (said.get(manifest.host, manifest.version) !== undefined) return;
  appendEvent(db, { host: manifest.host, at, kind: 'manifest-withheld', actor: 'controller', data: { version: manifest.version, storePath: manifest.storePath, reason } });
}

/**
 * The statement a renewal carries: the one the manifest carried (renewing changes when, not what),
 * unless its key is no longer trusted (rotated out) or it has none (issued before statements
 * existed); then whatever authorises the path now.
 */
export function renewalAuthority(deps: IssueDeps, old: ManifestRow, now: number): Authority | string {
  if (old.statement !== null) {
    const envelope = JSON.parse(old.statement) as Envelope;
    if (signedByTrustedKey(deps.releaseTrust, envelope)) return { envelope, text: old.statement, floor: old.statementFloor ?? 0 };
  }
  const authorised = authoriseStatement(deps.db, deps.releaseTrust, old.host, old.storePath, { now });
  return authorised.ok ? authorised.authority : authorised.reason;
}

/**
 * Re-signs the unchanged desired state (same store path, action, rollout and release statement; a
 * new version) of every host whose manifest expires within a third of the TTL, so that a quiet
 * host never holds an expired one, or was signed by a controller key this controller no longer
 * signs with. Returns how many manifests were renewed.
 */
export async function renewExpiringManifests(deps: IssueDeps): Promise<number> {
  const now = deps.clock.now();
  const due = manifestsDueForRenewal(deps.db, now + Math.floor(deps.manifestTtlMs / 3), deps.signer.keyId);
  let renewed = 0;
  for (let start = 0; start < due.length; start += BATCH_SIZE) {
    if (start > 0) await yieldToLoop();
    const batch = due.slice(start, start + BATCH_SIZE);
    const issuedAt = deps.clock.now();
    const issued = deps.db.transaction((tx) => {
      const rows: ManifestRow[] = [];
      for (const old of batch) {
        // The operator may have set a new desired state while we yielded; that one is fresh already.
        const current = tx.select({ desiredVersion: hosts.desiredVersion }).from(hosts).where(eq(hosts.name, old.host)).get();
        if (current?.desiredVersion !== old.version) continue;
        const authority = renewalAuthority(deps, old, issuedAt);
        if (typeof authority === 'string') {
          withhold(deps.db, old, authority, issuedAt);
          continue;
        }
        rows.push(
          issueInTransaction(
            tx,
            deps.signer,
            issuedAt,
            deps.manifestTtlMs,
            { host: old.host, storePath: old.storePath, action: old.action, rolloutId: old.rolloutId, authority },
            { kind: 'manifest-renewed', actor: 'controller' },
          ),
        );
      }
      return rows;
    });
    for (const row of issued) deps.bus.publish(published(row));
    renewed += issued.length;
  }
  return renewed;
}

export interface RenewalTimer {
  /** Runs one pass now (waits for a pass already running instead of overlapping it). */
  runNow(): Promise<number>;
  /** Stops the timer; resolves once a pass in flight has committed. */
  stop(): Promise<void>;
}

export function startRenewal(deps: IssueDeps & { checkIntervalMs: number; logger: Logger }): RenewalTimer {
  let running: Promise<number> | null = null;
  let stopped = false;
  const runNow = (): Promise<number> => {
    if (running) return running;
    if (stopped) return Promise.resolve(0);
    running = renewExpiringManifests(deps)
      .then((count) => {
        if (count > 0) deps.logger.info({ count }, 'renewed manifests');
        return count;
      })
      .catch((error: unknown) => {
        deps.logger.error({ err: error }, 'manifest renewal failed');
        return 0;
      })
      .finally(() => {
        running = null;
      });
    return running;
  };
  const timer = setInterval(() => runBackground(deps.logger, 'manifest renewal', runNow), deps.checkIntervalMs);
  timer.unref();
  return {
    runNow,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
