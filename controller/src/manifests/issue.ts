import { and, eq, max, sql } from 'drizzle-orm';
import type { Envelope } from '../../../shared/src/envelope.js';
import type { EventKind, ManifestSummary } from '../../../shared/src/operator-api.js';
import { PROTOCOL_VERSION, type Action, type ManifestPayload } from '../../../shared/src/protocol.js';
import { iso, type Clock } from '../clock.js';
import type { Db, Tx } from '../db/open.js';
import { prepared, statement } from '../db/prepared.js';
import { hosts, manifests, type ManifestRow } from '../db/schema.js';
import { appendEvent } from '../events.js';
import { manifestRebootSettingsReader } from '../hosts/reboot-settings.js';
import type { ManifestBus, PublishedManifest } from './bus.js';
import type { ManifestSigner } from './signer.js';
import { authoriseStatement, type Authority, type ReleaseTrust } from './statements.js';

export interface IssueDeps {
  db: Db;
  signer: ManifestSigner;
  releaseTrust: ReleaseTrust;
  clock: Clock;
  bus: ManifestBus;
  manifestTtlMs: number;
}

export interface DesiredState {
  host: string;
  storePath: string;
  action: Action;
  rolloutId: string | null;
  /** The release statement the assignment carries (see authoriseStatement). */
  authority: Authority;
}

export interface IssueCause {
  kind: Extract<EventKind, 'desired-set' | 'manifest-issued' | 'manifest-renewed'>;
  actor: string;
}

export type IssueOutcome =
  | { ok: true; manifest: ManifestRow }
  | { ok: false; reason: 'unknown-host' | 'not-authorised' | 'host-paused'; message: string };

/**
 * Makes `desired` the host's new desired state (refused on a paused host unless `force`): the next version for that host, carrying the
 * release statement that authorises its store path, signed, stored and logged in one transaction,
 * then announced (only after commit, so nobody is told of a manifest that a rollback could take back).
 */
export function issueManifest(deps: IssueDeps, desired: Omit<DesiredState, 'authority'>, cause: IssueCause, options: { force?: boolean } = {}): IssueOutcome {
  const now = deps.clock.now();
  const outcome = deps.db.transaction((tx): IssueOutcome => {
    const host = tx.select({ name: hosts.name, paused: hosts.paused }).from(hosts).where(eq(hosts.name, desired.host)).get();
    if (!host) return { ok: false, reason: 'unknown-host', message: `no host named ${JSON.stringify(desired.host)}` };
    // Pausing says "leave this host alone": a deliberate override must say so.
    if (host.paused && !options.force) {
      return {
        ok: false,
        reason: 'host-paused',
        message: `host ${JSON.stringify(desired.host)} is paused; resume it (shoal host resume ${desired.host}) or set it anyway with --force`,
      };
    }
    const authorised = authoriseStatement(deps.db, deps.releaseTrust, desired.host, desired.storePath, { now });
    if (!authorised.ok) return { ok: false, reason: 'not-authorised', message: authorised.reason };
    return { ok: true, manifest: issueInTransaction(tx, deps.signer, now, deps.manifestTtlMs, { ...desired, authority: authorised.authority }, cause) };
  });
  if (outcome.ok) deps.bus.publish(published(outcome.manifest));
  return outcome;
}

/**
 * Envelope objects of rows issued by this process, so that announcing a fresh manifest does not
 * parse back the JSON it was just serialised to (10,000 of them per wave).
 */
const envelopeOf = new WeakMap<ManifestRow, Envelope>();

/** One host of a batch: its desired state, and its desired version when the caller has read it. */
export interface BatchItem {
  desired: DesiredState;
  /** `hosts.desired_version` (always the highest version issued), read by the caller; undefined: look it up. */
  previousVersion?: number | null;
}

/** A manifest of a batch before its signature: what `alongside` (see issueBatchInTransaction) may already write about. */
export interface PlannedManifest {
  host: string;
  version: number;
  storePath: string;
  action: Action;
  floor: number;
}

/**
 * The signing step on its own, for callers that batch many hosts into one transaction (renewal,
 * waves). `tx` may be the database handle itself while a transaction is open on it: statements are
 * then prepared once per process rather than once per transaction. `previousVersion`, when the
 * caller already read the host's desired version (`hosts.desired_version`, always the highest
 * version issued), saves the lookup.
 */
export function issueInTransaction(
  tx: Db | Tx,
  signer: ManifestSigner,
  now: number,
  ttlMs: number,
  desired: DesiredState,
  cause: IssueCause,
  previousVersion?: number | null,
): ManifestRow {
  return issueBatchInTransaction(tx, signer, now, ttlMs, [{ desired, previousVersion }], cause)[0]!;
}

/**
 * Issues a manifest to each item's host, in this transaction: the payloads are built, then signed
 * (on the signing thread for a large batch) while the desired pointers, the events and whatever
 * `alongside` writes (a wave's member rows) are written here; then the manifests are stored. All
 * of it commits or none does, as with one host at a time. `cause` null: `alongside` logs each host
 * itself (a wave writes one `rollout-host-issued` event per host that says all `manifest-issued` would).
 */
export function issueBatchInTransaction(
  tx: Db | Tx,
  signer: ManifestSigner,
  now: number,
  ttlMs: number,
  items: readonly BatchItem[],
  cause: IssueCause | null,
  alongside?: (planned: readonly PlannedManifest[]) => void,
): ManifestRow[] {
  const writes = manifestWrites(tx);
  const issuedAt = iso(now);
  const expiresAt = iso(now + ttlMs);
  const rebootSettings = manifestRebootSettingsReader(tx);
  const planned = items.map(({ desired, previousVersion }) => {
    // The desired pointer, not only the manifests: after a restore it may stand above every stored
    // manifest, at the version the agent reported it accepted (hosts/watermark.ts).
    const previous = previousVersion !== undefined ? previousVersion : writes.maxVersion(desired.host);
    const version = (previous ?? 0) + 1;
    const payload: ManifestPayload = {
      protocol: PROTOCOL_VERSION,
      host: desired.host,
      version,
      storePath: desired.storePath,
      action: desired.action,
      rolloutId: desired.rolloutId,
      issuedAt,
      expiresAt,
      statement: desired.authority.envelope,
      reboot: rebootSettings(desired.host, desired.rolloutId),
    };
    return {
      desired,
      version,
      host: desired.host,
      storePath: desired.storePath,
      action: desired.action,
      floor: desired.authority.floor,
      bytes: Buffer.from(JSON.stringify(payload), 'utf8'),
    };
  });
  const envelopes = signer.signMany(
    planned.map((p) => p.bytes),
    () => {
      for (const { desired, version } of planned) {
        writes.setDesiredVersion(desired.host, version);
        if (cause) appendEvent(tx, {
          host: desired.host,
          at: now,
          kind: cause.kind,
          actor: cause.actor,
          data: { version, storePath: desired.storePath, action: desired.action, rolloutId: desired.rolloutId, floor: desired.authority.floor },
        });
      }
      alongside?.(planned);
    },
  );
  return planned.map(({ desired, version }, i) => {
    const envelope = envelopes[i]!;
    const row: ManifestRow = {
      host: desired.host,
      version,
      storePath: desired.storePath,
      action: desired.action,
      rolloutId: desired.rolloutId,
      issuedAt: now,
      expiresAt: now + ttlMs,
      envelope: JSON.stringify(envelope),
      statement: desired.authority.text,
      statementFloor: desired.authority.floor,
    };
    envelopeOf.set(row, envelope);
    writes.insert(row);
    return row;
  });
}

interface ManifestWrites {
  maxVersion(host: string): number | null | undefined;
  setDesiredVersion(host: string, version: number): void;
  insert(row: ManifestRow): void;
}

/**
 * The three statements of issuing, as plain better-sqlite3 statements on the database handle
 * (drizzle's parameter filling cost more than SQLite at 10,000 hosts a wave), or drizzle's on a
 * transaction handle, which has no client of its own.
 */
function manifestWrites(tx: Db | Tx): ManifestWrites {
  if ((tx as { $client?: unknown }).$client) {
    const db = tx as Db;
    return {
      maxVersion: (host) =>
        (
          statement(
            db,
            `select max(coalesce(h.desired_version, 0), coalesce(max(m.version), 0)) as version
             from hosts h left join manifests m on m.host = h.name where h.name = ?`,
          ).get(host) as { version: number | null } | undefined
        )?.version,
      setDesiredVersion: (host, version) => void statement(db, 'update hosts set desired_version = ? where name = ?').run(version, host),
      insert: (row) =>
        void statement(
          db,
          `insert into manifests (host, version, store_path, action, rollout_id, issued_at, expires_at, envelope, statement, statement_floor)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(row.host, row.version, row.storePath, row.action, row.rolloutId, row.issuedAt, row.expiresAt, row.envelope, row.statement, row.statementFloor),
    };
  }
  return {
    maxVersion: (host) =>
      prepared(tx, 'manifests.maxVersion', () =>
        tx
          .select({ version: sql<number>`max(coalesce(${hosts.desiredVersion}, 0), coalesce(${max(manifests.version)}, 0))` })
          .from(hosts)
          .leftJoin(manifests, eq(manifests.host, hosts.name))
          .where(eq(hosts.name, sql.placeholder('host')))
          .prepare(),
      ).get({ host })?.version,
    setDesiredVersion: (host, version) =>
      void prepared(tx, 'hosts.setDesiredVersion', () =>
        tx.update(hosts).set({ desiredVersion: sql`${sql.placeholder('version')}` }).where(eq(hosts.name, sql.placeholder('host'))).prepare(),
      ).run({ version, host }),
    insert: (row) =>
      void prepared(tx, 'manifests.insert', () =>
        tx
          .insert(manifests)
          .values({
            host: sql.placeholder('host'),
            version: sql.placeholder('version'),
            storePath: sql.placeholder('storePath'),
            action: sql.placeholder('action'),
            rolloutId: sql.placeholder('rolloutId'),
            issuedAt: sql.placeholder('issuedAt'),
            expiresAt: sql.placeholder('expiresAt'),
            envelope: sql.placeholder('envelope'),
            statement: sql.placeholder('statement'),
            statementFloor: sql.placeholder('statementFloor'),
          })
          .prepare(),
      ).run(row),
  };
}

export function published(row: ManifestRow): PublishedManifest {
  return { host: row.host, version: row.version, envelopeJson: row.envelope, envelope: envelopeOf.get(row) ?? (JSON.parse(row.envelope) as Envelope) };
}

/**
 * The host's desired manifest: the one its desired pointer names. None when nothing was set, or
 * when the pointer stands above every stored manifest (an agent ahead of a restored controller).
 */
export function latestManifest(db: Db | Tx, host: string): ManifestRow | undefined {
  return prepared(db, 'manifests.latest', () =>
    db
      .select({ manifest: manifests })
      .from(hosts)
      .innerJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)))
      .where(eq(hosts.name, sql.placeholder('host')))
      .prepare(),
  ).get({ host })?.manifest;
}

export function manifestByVersion(db: Db | Tx, host: string, version: number): ManifestRow | undefined {
  return db
    .select()
    .from(manifests)
    .where(and(eq(manifests.host, host), eq(manifests.version, version)))
    .get();
}

export function toSummary(row: ManifestRow): ManifestSummary {
  return {
    version: row.version,
    storePath: row.storePath,
    action: row.action,
    rolloutId: row.rolloutId,
    release: statementRelease(row.statement),
    issuedAt: iso(row.issuedAt),
    expiresAt: iso(row.expiresAt),
  };
}

/** The release named by the statement a manifest carries (stored by us, so trusted to parse; null when absent or odd). */
function statementRelease(statement: string | null): string | null {
  if (!statement) return null;
  try {
    const envelope = JSON.parse(statement) as { payload?: string };
    const payload = JSON.parse(Buffer.from(envelope.payload ?? '', 'base64').toString('utf8')) as { release?: unknown };
    return typeof payload.release === 'string' ? payload.release : null;
  } catch {
    return null;
  }
}
