import { and, eq, inArray, max, sql } from 'drizzle-orm';
import type { Envelope } from '../../../shared/src/envelope.js';
import type { EventKind, ManifestSummary } from '../../../shared/src/operator-api.js';
import { PROTOCOL_VERSION, type Action, type ManifestPayload } from '../../../shared/src/protocol.js';
import { iso, type Clock } from '../clock.js';
import type { ManifestRow } from '../db/schema.js';
import type { Queryable, Store, Tables } from '../db/store.js';
import { appendEvents } from '../events.js';
import { manifestRebootSettings, type RebootInputs } from '../hosts/reboot-settings.js';
import { announceIssued } from '../replicas/manifest-relay.js';
import type { ManifestBus, PublishedManifest } from './bus.js';
import type { ManifestSigner } from './signer.js';
import { authoriseStatement, type Authority, type ReleaseTrust } from './statements.js';
import { perHandle } from '../db/per-handle.js';
import { chunkedStatement, placeholderRow, rowIndexes, rowValues } from '../db/chunked.js';

export interface IssueDeps {
  store: Store;
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
export async function issueManifest(
  deps: IssueDeps,
  desired: Omit<DesiredState, 'authority'>,
  cause: IssueCause,
  options: { force?: boolean } = {},
): Promise<IssueOutcome> {
  const now = deps.clock.now();
  const { store } = deps;
  const outcome = await store.transaction(async (tx): Promise<IssueOutcome> => {
    const { hosts } = store.t;
    const [host] = await tx.select({ name: hosts.name, paused: hosts.paused }).from(hosts).where(eq(hosts.name, desired.host)).limit(1);
    if (!host) return { ok: false, reason: 'unknown-host', message: `no host named ${JSON.stringify(desired.host)}` };
    // Pausing says "leave this host alone": a deliberate override must say so.
    if (host.paused && !options.force) {
      return {
        ok: false,
        reason: 'host-paused',
        message: `host ${JSON.stringify(desired.host)} is paused; resume it (shoal host resume ${desired.host}) or set it anyway with --force`,
      };
    }
    const authorised = await authoriseStatement(store, deps.releaseTrust, desired.host, desired.storePath, { now });
    if (!authorised.ok) return { ok: false, reason: 'not-authorised', message: authorised.reason };
    return { ok: true, manifest: await issueInTransaction(store, deps.signer, now, deps.manifestTtlMs, { ...desired, authority: authorised.authority }, cause) };
  });
  // After commit (a body run again after a conflict would have announced twice, or something undone).
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
  /** What the host's reboot settings are made of besides its tags', read by the caller; undefined: look it up. */
  reboot?: RebootInputs;
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
 * The signing step on its own, inside the caller's transaction (`store.transaction`), for callers
 * that issue to one host among other writes. `previousVersion`, when the caller already read the
 * host's desired version (`hosts.desired_version`, always the highest version issued), saves the lookup.
 */
export async function issueInTransaction(
  store: Store,
  signer: ManifestSigner,
  now: number,
  ttlMs: number,
  desired: DesiredState,
  cause: IssueCause,
  previousVersion?: number | null,
): Promise<ManifestRow> {
  return (await issueBatchInTransaction(store, signer, now, ttlMs, [{ desired, previousVersion }], cause))[0]!;
}

/** Rows per multi-row statement of a batch: far below either engine's limit on parameters. */
const ROWS_PER_STATEMENT = 500;

/**
 * Issues a manifest to each item's host, inside the caller's transaction: the payloads are built,
 * then signed (on the signing thread for a large batch) while the desired pointers, the events and
 * whatever `alongside` writes (a wave's member rows) are written here; then the manifests are
 * stored. All of it commits or none does, as with one host at a time. `cause` null: `alongside`
 * logs each host itself (a wave writes one `rollout-host-issued` event per host that says all
 * `manifest-issued` would). One statement per batch for each kind of write, whatever its size.
 * Pure apart from the database: a body run again after a conflict issues the same again.
 */
export async function issueBatchInTransaction(
  store: Store,
  signer: ManifestSigner,
  now: number,
  ttlMs: number,
  items: readonly BatchItem[],
  cause: IssueCause | null,
  alongside?: (planned: readonly PlannedManifest[]) => Promise<void>,
): Promise<ManifestRow[]> {
  if (items.length === 0) return [];
  const issuedAt = iso(now);
  const expiresAt = iso(now + ttlMs);
  const rebootSettings = await manifestRebootSettings(
    store,
    items.map(({ desired, reboot }) => ({ host: desired.host, rolloutId: desired.rolloutId, read: reboot })),
  );
  const unknown = items.filter((item) => item.previousVersion === undefined).map((item) => item.desired.host);
  const highest = unknown.length > 0 ? await highestVersions(store, unknown) : new Map<string, number>();
  const planned = items.map(({ desired, previousVersion }) => {
    // The desired pointer, not only the manifests: after a restore it may stand above every stored
    // manifest, at the version the agent reported it accepted (hosts/watermark.ts).
    const previous = previousVersion !== undefined ? previousVersion : highest.get(desired.host);
    const version = (previous ?? 0) + 1;
    const payload: Omit<ManifestPayload, 'statement'> = {
      protocol: PROTOCOL_VERSION,
      host: desired.host,
      version,
      storePath: desired.storePath,
      action: desired.action,
      rolloutId: desired.rolloutId,
      issuedAt,
      expiresAt,
      reboot: rebootSettings(desired.host, desired.rolloutId),
    };
    return {
      desired,
      version,
      host: desired.host,
      storePath: desired.storePath,
      action: desired.action,
      floor: desired.authority.floor,
      bytes: Buffer.from(withStatement(JSON.stringify(payload), desired.authority), 'utf8'),
    };
  });
  const envelopes = await signer.signMany(
    planned.map((p) => p.bytes),
    async () => {
      await setDesiredVersions(store, planned);
      if (cause) {
        await appendEvents(
          store,
          planned.map(({ desired, version }) => ({
            host: desired.host,
            at: now,
            kind: cause.kind,
            actor: cause.actor,
            data: { version, storePath: desired.storePath, action: desired.action, rolloutId: desired.rolloutId, floor: desired.authority.floor },
          })),
        );
      }
      await alongside?.(planned);
    },
  );
  const rows = planned.map(({ desired, version }, i): ManifestRow => {
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
    return row;
  });
  await insertManifests(store, rows);
  // Replicas serving these hosts' connections hear of them on commit (this one publishes on its bus after commit).
  await announceIssued(store, rows);
  return rows;
}

/**
 * The payload's JSON with the statement added as its last member, from the statement's stored
 * text: that text is the envelope's own JSON.stringify (what authoriseStatement read it from), so
 * the bytes say what stringifying the envelope object again would, without parsing and
 * serialising a few hundred bytes again for each of a wave's 10,000 hosts.
 */
function withStatement(payloadJson: string, authority: Authority): string {
  return `${payloadJson.slice(0, -1)},"statement":${authority.text}}`;
}

/** The highest version each host was issued: its desired pointer or its highest stored manifest, whichever is higher. */
async function highestVersions(store: Store, names: readonly string[]): Promise<Map<string, number>> {
  const { hosts, manifests } = store.t;
  const highest = new Map<string, number>();
  for (let i = 0; i < names.length; i += ROWS_PER_STATEMENT) {
    const rows = await store.q
      .select({ host: hosts.name, desired: hosts.desiredVersion, stored: max(manifests.version) })
      .from(hosts)
      .leftJoin(manifests, eq(manifests.host, hosts.name))
      .where(inArray(hosts.name, names.slice(i, i + ROWS_PER_STATEMENT)))
      .groupBy(hosts.name, hosts.desiredVersion);
    for (const row of rows) highest.set(row.host, Math.max(row.desired ?? 0, Number(row.stored ?? 0)));
  }
  return highest;
}

const MANIFEST_FIELDS = ['host', 'version', 'storePath', 'action', 'rolloutId', 'issuedAt', 'expiresAt', 'envelope', 'statement', 'statementFloor'] as const;

const insertManifests = chunkedStatement<ManifestRow>(
  'manifests_insert',
  (q, { manifests }, size) =>
    q
      .insert(manifests)
      .values(rowIndexes(size).map((i) => placeholderRow(MANIFEST_FIELDS, i))),
);

/** Points each host's desired version at its new manifest: one statement per chunk (an update from the rows' values). */
const setDesiredVersions = chunkedStatement<{ host: string; version: number }>('hosts_desired_version', (q, { hosts }, size) => {
  const v = rowValues({ host: 'text', version: 'bigint' }, size);
  return q.update(hosts).set({ desiredVersion: v.of.version }).from(v.from).where(v.joins(hosts.name, 'host'));
});

export function published(row: ManifestRow): PublishedManifest {
  return { host: row.host, version: row.version, envelopeJson: row.envelope, envelope: envelopeOf.get(row) ?? (JSON.parse(row.envelope) as Envelope) };
}

/**
 * The host's desired manifest: the one its desired pointer names. None when nothing was set, or
 * when the pointer stands above every stored manifest (an agent ahead of a restored controller).
 */
export async function latestManifest(store: Store, host: string): Promise<ManifestRow | undefined> {
  const [row] = await latestQuery(store).execute({ host });
  return row?.manifest;
}

/**
 * The version of the host's desired manifest (what latestManifest would return), without the
 * envelope and statement texts: most polls hold that version already and are answered 304, and
 * copying a manifest's few kilobytes out of SQLite was most of such a poll's read.
 */
export async function latestManifestVersion(store: Store, host: string): Promise<number | undefined> {
  const [row] = await latestVersionQuery(store).execute({ host });
  return row?.version;
}

/**
 * Built once per handle: every poll and websocket login runs them (db/per-handle.ts). The read
 * handle outside transactions is one per store, so polls share one statement.
 */
const latestQuery = perHandle(buildLatest);
const latestVersionQuery = perHandle((q: Queryable, { hosts, manifests }: Tables) =>
  q
    .select({ version: manifests.version })
    .from(hosts)
    .innerJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)))
    .where(eq(hosts.name, sql.placeholder('host')))
    .prepare('manifests_latest_version'),
);

function buildLatest(q: Queryable, { hosts, manifests }: Tables) {
  return q
    .select({ manifest: manifests })
    .from(hosts)
    .innerJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)))
    .where(eq(hosts.name, sql.placeholder('host')))
    .prepare('manifests_latest');
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
