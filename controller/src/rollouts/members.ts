import { and, asc, count, eq, inArray, max, sql } from 'drizzle-orm';
import {
  ACTIVE_ROLLOUT_STATES,
  RolloutHostState,
  RolloutRollbackState,
  type RolloutPlan,
} from '../../../shared/src/rollout-api.js';
import type { RolloutHostRow } from '../db/schema.js';
import type { Queryable, Store, Tables } from '../db/store.js';
import { perHandle } from '../db/per-handle.js';
import type { OwnSettings } from '../hosts/reboot-settings.js';
import type { StoredStatement } from '../manifests/statements.js';
import { countMembers, IN_FLIGHT_MEMBER_STATES, type Counts, type ReportedMember } from './transitions.js';
import { chunkedStatement, placeholderRow, rowIndexes, rowKeysIn, rowValues, shared } from '../db/chunked.js';

/*
 * Reading and writing rollout members (rollout_hosts rows), in the caller's transaction
 * (`store.q`). A wave's batch is read and written with one statement each, not one per host.
 * Member states go in as parameters from the typed enums, so a misspelt state does not compile.
 */

const MEMBER = RolloutHostState.enum;
const ROLLBACK = RolloutRollbackState.enum;
const IN_FLIGHT = [...IN_FLIGHT_MEMBER_STATES];

/** One member of one rollout. */
export interface MemberKey {
  rolloutId: string;
  host: string;
}

/** The columns a deadline or bake check needs. */
export interface WatchedMember extends MemberKey {
  wave: number;
  state: RolloutHostState;
  issuedAt: number | null;
  acceptedAt: number | null;
}

/**
 * A pending member about to be issued, with what issuing it needs of its host: its desired version,
 * the system it runs (where a rollback returns it), its own reboot settings, and the release's
 * statement for it at its target (null: none stored), for manifests/statements.ts to judge.
 */
export interface PendingMember {
  host: string;
  targetPath: string;
  currentSystem: string | null;
  desiredVersion: number | null;
  reboot: OwnSettings;
  statement: StoredStatement | null;
}

/** Creates the members of a new rollout, all pending, in plan order. */
export async function insertMembers(store: Store, rolloutId: string, plan: RolloutPlan, targets: ReadonlyMap<string, string>): Promise<void> {
  let position = 0;
  const rows = plan.waves.flatMap((wave) =>
    wave.hosts.map((host) => ({ rolloutId, host, wave: wave.index, position: position++, targetPath: targets.get(host)!, state: MEMBER.pending })),
  );
  await insertMemberRows(store, rows);
}

const MEMBER_FIELDS = ['rolloutId', 'host', 'wave', 'position', 'targetPath', 'state'] as const;

const insertMemberRows = chunkedStatement<Record<(typeof MEMBER_FIELDS)[number], unknown>>(
  'rollout_hosts_insert',
  (q, { rolloutHosts }, size) =>
    q
      .insert(rolloutHosts)
      .values(rowIndexes(size).map((i) => placeholderRow(MEMBER_FIELDS, i))),
);

/** The members of a rollout (of one wave, when given), in plan order. */
export async function listMembers(store: Store, rolloutId: string, wave?: number): Promise<RolloutHostRow[]> {
  const { rolloutHosts } = store.t;
  const where = wave === undefined ? eq(rolloutHosts.rolloutId, rolloutId) : and(eq(rolloutHosts.rolloutId, rolloutId), eq(rolloutHosts.wave, wave));
  return store.q.select().from(rolloutHosts).where(where).orderBy(asc(rolloutHosts.position));
}

/** Writes `values` to the member and to the row it was read from. */
export async function updateMember(store: Store, member: RolloutHostRow, values: Partial<RolloutHostRow>): Promise<void> {
  const { rolloutHosts } = store.t;
  Object.assign(member, values);
  await store.q
    .update(rolloutHosts)
    .set(values)
    .where(and(eq(rolloutHosts.rolloutId, member.rolloutId), eq(rolloutHosts.host, member.host)));
}

/** Which rollouts still active (owning their hosts) have a member among `names`. */
export async function activeOwners(store: Store, names: readonly string[]): Promise<Array<{ rolloutId: string; host: string }>> {
  // Usually no rollout is active at all, and then no member needs reading. The names are no help
  // to PostgreSQL's planner: each fleet-wide rollout has a member for every host, so a list of
  // hosts matches a fixed share of rollout_hosts however much history it holds, and it scanned the
  // table for each chunk (est. 323 against 355 for the index on host, 10,000 members).
  const { rollouts } = store.t;
  const [active] = await store.q.select({ id: rollouts.id }).from(rollouts).where(inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])).limit(1);
  if (!active || names.length === 0) return [];
  return selectActiveOwners(store, names.map((host) => ({ host })));
}

// A chunk statement: every start, retry and rollback asks this of up to a whole fleet's names,
// each chunk built by drizzle afresh before (twenty 500-name lists for 10,000 hosts).
const selectActiveOwners = chunkedStatement<{ host: string }, { rolloutId: string; host: string }>(
  'rollout_hosts_active_owners',
  (q, { rolloutHosts, rollouts }, size) => {
    const returns = { rolloutId: rolloutHosts.rolloutId, host: rolloutHosts.host };
    const query = q
      .select(returns)
      .from(rolloutHosts)
      .innerJoin(rollouts, eq(rollouts.id, rolloutHosts.rolloutId))
      .where(and(rowKeysIn(rolloutHosts.host, 'host', size), inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])));
    return { query, returns };
  },
);

/** Each member's state and rollback state, for deciding what a retry takes. */
export async function memberResults(store: Store, rolloutId: string): Promise<Array<Pick<RolloutHostRow, 'host' | 'state' | 'rollbackState'>>> {
  const { rolloutHosts } = store.t;
  return store.q
    .select({ host: rolloutHosts.host, state: rolloutHosts.state, rollbackState: rolloutHosts.rollbackState })
    .from(rolloutHosts)
    .where(eq(rolloutHosts.rolloutId, rolloutId));
}

/** Member states counted in SQL (no member rows read): the whole rollout, and `wave` on its own. */
export async function memberCounts(store: Store, rolloutId: string, wave: number): Promise<Counts> {
  const counts: Counts = { failed: 0, finished: 0, lastFinishedAt: null, waveSize: 0, wavePending: 0, waveInFlight: 0 };
  for (const row of await countsQuery(store).execute({ rolloutId })) countMembers(counts, row.state, row.n, row.wave === wave, row.lastFinishedAt);
  return counts;
}

/**
 * Run by every tick and every batch of a wave. Grouped by wave and state, the order of the index
 * rollout_hosts_counts, so SQLite counts as it walks the index: grouped by `wave = <current>` it
 * sorted the rows in a temporary b-tree first (2.8 ms against 1.1 ms for 10,000 members, each of
 * a wave's 20 batches). Built once per handle (db/per-handle.ts).
 */
const countsQuery = perHandle((q: Queryable, { rolloutHosts }: Tables) =>
  q
    .select({ wave: rolloutHosts.wave, state: rolloutHosts.state, n: count(), lastFinishedAt: max(rolloutHosts.finishedAt) })
    .from(rolloutHosts)
    .where(eq(rolloutHosts.rolloutId, sql.placeholder('rolloutId')))
    .groupBy(rolloutHosts.wave, rolloutHosts.state)
    .prepare('rollout_hosts_counts'),
);

async function watchedMembers(store: Store, rolloutId: string, wave: number, states: readonly RolloutHostState[]): Promise<WatchedMember[]> {
  const { rolloutHosts } = store.t;
  return store.q
    .select({
      rolloutId: rolloutHosts.rolloutId,
      host: rolloutHosts.host,
      wave: rolloutHosts.wave,
      state: rolloutHosts.state,
      issuedAt: rolloutHosts.issuedAt,
      acceptedAt: rolloutHosts.acceptedAt,
    })
    .from(rolloutHosts)
    .where(and(eq(rolloutHosts.rolloutId, rolloutId), eq(rolloutHosts.wave, wave), inArray(rolloutHosts.state, [...states])))
    .orderBy(asc(rolloutHosts.position));
}

/** Members of `wave` that hold a manifest and have no result yet, in plan order. */
export function inFlightMembers(store: Store, rolloutId: string, wave: number): Promise<WatchedMember[]> {
  return watchedMembers(store, rolloutId, wave, IN_FLIGHT);
}

/** Members of `wave` that reported healthy, in plan order. */
export function healthyMembers(store: Store, rolloutId: string, wave: number): Promise<WatchedMember[]> {
  return watchedMembers(store, rolloutId, wave, [MEMBER.healthy]);
}

/**
 * Up to `limit` pending members of `wave` whose host is not paused, in plan order, with what
 * issuing each needs (PendingMember): one statement for the batch, prepared once (a chunk of one
 * row, db/chunked.ts), where a wave's batch used to read the release's statements and the hosts'
 * reboot settings with a statement each after this one: two more round trips per batch on
 * PostgreSQL, and its statements looked up by a 500-name `in (…)` list (bench/README.md has the
 * figures). The statement is found by release_hosts' key (release, host), and only where its path
 * is the member's target.
 */
export async function pendingMembers(store: Store, rolloutId: string, release: string, wave: number, limit: number): Promise<PendingMember[]> {
  // Bound as a parameter, where an unbounded batch has no LIMIT of its own.
  const rows = await selectPending(store, [{ rolloutId, release, wave, limit: Math.min(limit, Number.MAX_SAFE_INTEGER) }]);
  return rows.map(({ tags, rebootPolicy, maintenanceWindows, statement, floor, ...member }) => ({
    ...member,
    reboot: { tags, rebootPolicy, maintenanceWindows },
    statement: statement === null ? null : { text: statement, floor: floor! },
  }));
}

type PendingRow = Omit<PendingMember, 'reboot' | 'statement'> & OwnSettings & { statement: string | null; floor: number | null };

const selectPending = chunkedStatement<{ rolloutId: string; release: string; wave: number; limit: number }, PendingRow>(
  'rollout_hosts_pending',
  (q, { rolloutHosts, hosts, releaseHosts, releases }) => {
    const returns = {
      host: rolloutHosts.host,
      targetPath: rolloutHosts.targetPath,
      currentSystem: hosts.currentSystem,
      desiredVersion: hosts.desiredVersion,
      tags: hosts.tags,
      rebootPolicy: hosts.rebootPolicy,
      maintenanceWindows: hosts.maintenanceWindows,
      statement: releaseHosts.statement,
      floor: releases.floor,
    };
    const query = q
      .select(returns)
      .from(rolloutHosts)
      .innerJoin(hosts, eq(hosts.name, rolloutHosts.host))
      .leftJoin(
        releaseHosts,
        and(eq(releaseHosts.release, shared('release')), eq(releaseHosts.host, rolloutHosts.host), eq(releaseHosts.storePath, rolloutHosts.targetPath)),
      )
      .leftJoin(releases, eq(releases.name, releaseHosts.release))
      .where(and(eq(rolloutHosts.rolloutId, shared('rolloutId')), eq(rolloutHosts.wave, shared('wave')), eq(rolloutHosts.state, MEMBER.pending), eq(hosts.paused, false)))
      .orderBy(asc(rolloutHosts.position))
      .limit(shared('limit'));
    return { query, returns };
  },
);

/** A member of a batch sent manifest `version`; `previousSystem` is what its host ran, where a rollback returns it. */
export interface IssuedMember {
  host: string;
  version: number;
  previousSystem: string | null;
}

/** The members of `rolloutId` were sent their manifests: one statement per chunk (an update from the rows' values). */
export async function markIssued(store: Store, rolloutId: string, issued: readonly IssuedMember[], now: number): Promise<void> {
  await markIssuedChunks(store, issued.map((member) => ({ ...member, rolloutId, now })));
}

const markIssuedChunks = chunkedStatement<IssuedMember & { rolloutId: string; now: number }>('rollout_hosts_issued', (q, { rolloutHosts }, size) => {
  const v = rowValues({ host: 'text', version: 'bigint', previousSystem: 'text' }, size);
  return q
    .update(rolloutHosts)
    .set({ state: MEMBER.issued, manifestVersion: v.of.version, issuedAt: sql`${shared('now')}`, previousSystem: v.of.previousSystem })
    .from(v.from)
    .where(and(eq(rolloutHosts.rolloutId, shared('rolloutId')), v.joins(rolloutHosts.host, 'host')));
});

/** The member has its result: failed or skipped (with why), or healthy (its reason cleared). */
export async function finishMember(store: Store, member: MemberKey, state: 'healthy' | 'failed' | 'skipped', reason: string | null, now: number): Promise<void> {
  const { rolloutHosts } = store.t;
  await store.q
    .update(rolloutHosts)
    .set({ state, finishedAt: now, reason })
    .where(and(eq(rolloutHosts.rolloutId, member.rolloutId), eq(rolloutHosts.host, member.host)));
}

/** The system the member's host ran before the rollout, and the one the rollout gives it. */
export async function memberSystems(store: Store, member: MemberKey): Promise<{ previousSystem: string | null; targetPath: string }> {
  const { rolloutHosts } = store.t;
  const [row] = await store.q
    .select({ previousSystem: rolloutHosts.previousSystem, targetPath: rolloutHosts.targetPath })
    .from(rolloutHosts)
    .where(and(eq(rolloutHosts.rolloutId, member.rolloutId), eq(rolloutHosts.host, member.host)))
    .limit(1);
  return row!;
}

/** The member was sent manifest `version` taking it back to its previous system. */
export async function markRollbackIssued(store: Store, member: MemberKey, version: number, now: number): Promise<void> {
  const { rolloutHosts } = store.t;
  await store.q
    .update(rolloutHosts)
    .set({ rollbackState: ROLLBACK.issued, rollbackVersion: version, rollbackIssuedAt: now })
    .where(and(eq(rolloutHosts.rolloutId, member.rolloutId), eq(rolloutHosts.host, member.host)));
}

/**
 * A paused rollout's host clocks stand still: on resume, the issue and acceptance times of its
 * members in flight move on by the pause.
 */
export async function shiftInFlightClocks(store: Store, rolloutId: string, pausedForMs: number): Promise<void> {
  const { rolloutHosts } = store.t;
  await store.q
    .update(rolloutHosts)
    .set({ issuedAt: sql`${rolloutHosts.issuedAt} + ${pausedForMs}`, acceptedAt: sql`${rolloutHosts.acceptedAt} + ${pausedForMs}` })
    .where(and(eq(rolloutHosts.rolloutId, rolloutId), inArray(rolloutHosts.state, IN_FLIGHT)));
}

/*
 * The report path: these run inside the report writer's group commit (reports/store.ts) for all
 * reports of a group at once, a statement per chunk of members rather than several per report.
 */

/** A member a report belongs to, as the report rules read it (transitions.ts), with its key. */
export type ReportedMemberRow = ReportedMember & MemberKey;

const selectReported = chunkedStatement<{ host: string; version: number }, ReportedMemberRow & { version: number }>(
  'rollout_hosts_reported',
  (q, { manifests, rolloutHosts, rollouts }, size) => {
    const returns = {
      version: manifests.version,
      host: rolloutHosts.host,
      rolloutId: rolloutHosts.rolloutId,
      wave: rolloutHosts.wave,
      state: rolloutHosts.state,
      targetPath: rolloutHosts.targetPath,
      manifestVersion: rolloutHosts.manifestVersion,
      previousSystem: rolloutHosts.previousSystem,
      rollbackState: rolloutHosts.rollbackState,
      rollbackVersion: rolloutHosts.rollbackVersion,
      rolloutState: rollouts.state,
      waveIndex: rollouts.waveIndex,
    };
    // From the (host, version) pairs as a VALUES list: the planner knows it has `size` rows and
    // looks each up by key. With `host in (…) and version in (…)` PostgreSQL misjudged how many
    // manifests match and hashed all of rollout_hosts for every report group (a sequential scan of
    // the whole rollout's members: about half of the server's CPU during report ingest).
    const v = rowValues({ host: 'text', version: 'bigint' }, size);
    const query = q
      .select(returns)
      .from(v.from)
      .innerJoin(manifests, and(eq(manifests.host, v.of.host), eq(manifests.version, v.of.version)))
      .innerJoin(rolloutHosts, and(eq(rolloutHosts.rolloutId, manifests.rolloutId), eq(rolloutHosts.host, manifests.host)))
      .innerJoin(rollouts, eq(rollouts.id, rolloutHosts.rolloutId));
    return { query, returns };
  },
);

/**
 * The rollout members manifests (host, version) belong to (none for a version no rollout issued),
 * keyed by `memberOfKey`. The manifest row says which rollout issued it, and a renewal keeps the
 * rollout of what it re-signs: so a report on a version re-signed any number of times still finds
 * its rollout. Two versions of one member come back as one object, so what the caller changes on
 * it is seen through either.
 */
export async function reportedMembers(store: Store, wanted: ReadonlyArray<{ host: string; version: number }>): Promise<Map<string, ReportedMemberRow>> {
  const found = new Map<string, ReportedMemberRow>();
  const byMember = new Map<string, ReportedMemberRow>();
  const distinct = new Map(wanted.map((w) => [memberOfKey(w.host, w.version), w]));
  for (const { version, ...member } of await selectReported(store, [...distinct.values()])) {
    const key = memberOfKey(member.host, version);
    const memberKey = `${member.rolloutId}\u0000${member.host}`;
    let one = byMember.get(memberKey);
    if (!one) byMember.set(memberKey, (one = member));
    found.set(key, one);
  }
  return found;
}

/** How reportedMembers keys what it found: by the manifest a report names. */
export function memberOfKey(host: string, version: number): string {
  return `${host}\u0000${version}`;
}

/** What reports changed on a member, in the order they did: accepted, then finished, then its rollback's result. */
export interface MemberResult extends MemberKey {
  acceptedAt?: number;
  finished?: { state: 'healthy' | 'failed'; reason: string | null; at: number };
  rollbackState?: RolloutRollbackState;
}

const markAcceptedChunks = chunkedStatement<MemberKey & { at: number }>(
  'rollout_hosts_accepted',
  (q, { rolloutHosts }, size) =>
    q
      .update(rolloutHosts)
      .set({ state: MEMBER['in-progress'], acceptedAt: sql`${shared('at')}` })
      .where(and(eq(rolloutHosts.rolloutId, shared('rolloutId')), rowKeysIn(rolloutHosts.host, 'host', size))),
);

const markFinishedChunks = chunkedStatement<MemberKey & { state: string; reason: string | null; at: number }>('rollout_hosts_finished', (q, { rolloutHosts }, size) => {
  const v = rowValues({ host: 'text', state: 'text', reason: 'text' }, size);
  return q
    .update(rolloutHosts)
    .set({ state: v.of.state, finishedAt: sql`${shared('at')}`, reason: v.of.reason })
    .from(v.from)
    .where(and(eq(rolloutHosts.rolloutId, shared('rolloutId')), v.joins(rolloutHosts.host, 'host')));
});

const markRollbackChunks = chunkedStatement<MemberKey & { rollbackState: string }>('rollout_hosts_rollback_result', (q, { rolloutHosts }, size) => {
  const v = rowValues({ host: 'text', rollbackState: 'text' }, size);
  return q
    .update(rolloutHosts)
    .set({ rollbackState: v.of.rollbackState })
    .from(v.from)
    .where(and(eq(rolloutHosts.rolloutId, shared('rolloutId')), v.joins(rolloutHosts.host, 'host')));
});

/**
 * Writes what reports changed on members, a few statements per rollout and kind of change
 * (db/chunked.ts). The kinds go in the order a member passes through them (accepted before
 * finished; a rollback's result touches its own column), so the rows end as if written report by
 * report.
 */
export async function writeMemberResults(store: Store, results: readonly MemberResult[]): Promise<void> {
  const byRollout = new Map<string, MemberResult[]>();
  for (const result of results) {
    const list = byRollout.get(result.rolloutId);
    if (list) list.push(result);
    else byRollout.set(result.rolloutId, [result]);
  }
  for (const members of byRollout.values()) {
    await markAcceptedChunks(store, members.flatMap((m) => (m.acceptedAt === undefined ? [] : [{ rolloutId: m.rolloutId, host: m.host, at: m.acceptedAt }])));
    await markFinishedChunks(store, members.flatMap((m) => (m.finished === undefined ? [] : [{ rolloutId: m.rolloutId, host: m.host, ...m.finished }])));
    await markRollbackChunks(store, members.flatMap((m) => (m.rollbackState === undefined ? [] : [{ rolloutId: m.rolloutId, host: m.host, rollbackState: m.rollbackState }])));
  }
}
