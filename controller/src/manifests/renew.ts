import { runBackground } from '../background.js';
import { and, eq, inArray, lte, or, sql, type AnyColumn, type SQL } from 'drizzle-orm';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Envelope } from '../../../shared/src/envelope.js';
import { DEPLOYMENT_FAILURE_PHASES } from '../../../shared/src/phases.js';
import type { Logger } from '../../../shared/src/logger.js';
import type { Action } from '../../../shared/src/protocol.js';
import type { ManifestRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { appendEvent } from '../events.js';
import { issueBatchInTransaction, published, type BatchItem, type IssueDeps } from './issue.js';
import { authoriseStatement, signedByTrustedKey, type Authority } from './statements.js';

/** Signatures per transaction before yielding to the event loop, so agents keep being served during a big renewal. */
const BATCH_SIZE = 250;

/**
 * Latest manifests (desired states) that expire at or before `dueBy`, or that another controller
 * key signed: after a controller-key rotation every host must hold an assignment signed by the new
 * key before operators remove the old one from the agents, or a quiet host would refuse its own
 * desired state as signed by an unknown key.
 */
export async function manifestsDueForRenewal(store: Store, dueBy: number, signingKeyId: string): Promise<ManifestRow[]> {
  const { hosts, manifests } = store.t;
  return store.q
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
        or(lte(manifests.expiresAt, dueBy), signedByOtherKey(store, manifests.envelope, signingKeyId)),
        // A host that refused or rolled back its desired state would only try the same failure again.
        sql`not (coalesce(${hosts.reportedVersion} = ${hosts.desiredVersion}, false) and coalesce(${inArray(hosts.phase, [...DEPLOYMENT_FAILURE_PHASES])}, false))`,
      ),
    );
}

/**
 * Whether the manifest envelope (JSON text on both engines) was signed by another key than
 * `keyId`. Checked in SQL (store.jsonText speaks each engine's JSON dialect): selecting every desired manifest
 * to parse here would read the whole fleet's envelopes on each renewal pass.
 */
function signedByOtherKey(store: Store, envelope: AnyColumn, keyId: string): SQL {
  return sql`${store.jsonText(envelope, ['signatures', 0, 'keyid'])} is distinct from ${keyId}`;
}

/** Without a statement the agent would refuse the renewal anyway. Logged once per manifest: it stays due on every pass. */
async function withhold(store: Store, manifest: ManifestRow, reason: string, at: number): Promise<void> {
  const { events } = store.t;
  // The version is inside the JSON data: compared here rather than in each engine's JSON dialect (few rows: one per withheld version).
  const said = await store.q
    .select({ data: events.data })
    .from(events)
    .where(and(eq(events.host, manifest.host), eq(events.kind, 'manifest-withheld')));
  if (said.some((row) => (row.data as { version?: unknown } | null)?.version === manifest.version)) return;
  await appendEvent(store, {
    host: manifest.host,
    at,
    kind: 'manifest-withheld',
    actor: 'controller',
    data: { version: manifest.version, storePath: manifest.storePath, reason },
  });
}

/**
 * The statement a renewal carries: the one the manifest carried (renewing changes when, not what),
 * unless its key is no longer trusted (rotated out) or it has none (issued before statements
 * existed); then whatever authorises the path now.
 */
export async function renewalAuthority(deps: IssueDeps, old: ManifestRow, now: number): Promise<Authority | string> {
  if (old.statement !== null) {
    const envelope = JSON.parse(old.statement) as Envelope;
    if (signedByTrustedKey(deps.releaseTrust, envelope)) return { envelope, text: old.statement, floor: old.statementFloor ?? 0 };
  }
  const authorised = await authoriseStatement(deps.store, deps.releaseTrust, old.host, old.storePath, { now });
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
  const { store } = deps;
  const due = await manifestsDueForRenewal(store, now + Math.floor(deps.manifestTtlMs / 3), deps.signer.keyId);
  let renewed = 0;
  for (let start = 0; start < due.length; start += BATCH_SIZE) {
    if (start > 0) await yieldToLoop();
    const batch = due.slice(start, start + BATCH_SIZE);
    const issuedAt = deps.clock.now();
    const issued = await store.transaction(async (tx) => {
      const { hosts } = store.t;
      // The operator may have set a new desired state while we yielded; that one is fresh already.
      const current = await tx
        .select({ host: hosts.name, desiredVersion: hosts.desiredVersion })
        .from(hosts)
        .where(inArray(hosts.name, batch.map((old) => old.host)));
      const desiredOf = new Map(current.map((row) => [row.host, row.desiredVersion]));
      const items: BatchItem[] = [];
      for (const old of batch) {
        if (desiredOf.get(old.host) !== old.version) continue;
        const authority = await renewalAuthority(deps, old, issuedAt);
        if (typeof authority === 'string') {
          await withhold(store, old, authority, issuedAt);
          continue;
        }
        items.push({ desired: { host: old.host, storePath: old.storePath, action: old.action, rolloutId: old.rolloutId, authority } });
      }
      return issueBatchInTransaction(store, deps.signer, issuedAt, deps.manifestTtlMs, items, { kind: 'manifest-renewed', actor: 'controller' });
    });
    // After commit only: a body run again after a conflict must not have announced anything.
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
