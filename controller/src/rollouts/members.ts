import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import {
  ACTIVE_ROLLOUT_STATES,
  RolloutHostState,
  RolloutRollbackState,
  type RolloutPlan,
} from '../../../shared/src/rollout-api.js';
import type { Db, Tx } from '../db/open.js';
import { prepared, statement } from '../db/prepared.js';
import { rolloutHosts, rollouts, type RolloutHostRow } from '../db/schema.js';
import { countMembers, IN_FLIGHT_MEMBER_STATES, type Counts, type ReportedMember } from './transitions.js';

/*
 * Reading and writing rollout members (rollout_hosts rows). The hot statements (once per host of
 * a wave, once per report) are plain prepared SQL on the database handle the transaction is open
 * on; member states go in as parameters from the typed enums, so a misspelt state does not compile.
 */

const MEMBER = RolloutHostState.enum;
const ROLLBACK = RolloutRollbackState.enum;
const IN_FLIGHT = [...IN_FLIGHT_MEMBER_STATES];
/** `state in (${IN_FLIGHT_PLACEHOLDERS})` takes `...IN_FLIGHT` as its parameters. */
const IN_FLIGHT_PLACEHOLDERS = IN_FLIGHT.map(() => '?').join(', ');

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

/** A pending member about to be issued, with what issuing it needs of its host. */
export interface PendingMember {
  host: string;
  targetPath: string;
  currentSystem: string | null;
  desiredVersion: number | null;
}

/** Creates the members of a new rollout, all pending, in plan order. */
export function insertMembers(db: Db, rolloutId: string, plan: RolloutPlan, targets: ReadonlyMap<string, string>): void {
  const insert = prepared(db, 'rolloutHosts.insert', () =>
    db
      .insert(rolloutHosts)
      .values({
        rolloutId: sql.placeholder('rolloutId'),
        host: sql.placeholder('host'),
        wave: sql.placeholder('wave'),
        position: sql.placeholder('position'),
        targetPath: sql.placeholder('targetPath'),
        state: 'pending',
      })
      .prepare(),
  );
  let position = 0;
  for (const wave of plan.waves) {
    for (const host of wave.hosts) {
      insert.run({ rolloutId, host, wave: wave.index, position: position++, targetPath: targets.get(host)! });
    }
  }
}

/** The members of a rollout (of one wave, when given), in plan order. */
export function listMembers(tx: Tx, rolloutId: string, wave?: number): RolloutHostRow[] {
  const where = wave === undefined ? eq(rolloutHosts.rolloutId, rolloutId) : and(eq(rolloutHosts.rolloutId, rolloutId), eq(rolloutHosts.wave, wave));
  return tx.select().from(rolloutHosts).where(where).orderBy(asc(rolloutHosts.position)).all();
}

/** Writes `values` to the member and to the row it was read from. */
export function updateMember(tx: Tx, member: RolloutHostRow, values: Partial<RolloutHostRow>): void {
  Object.assign(member, values);
  tx.update(rolloutHosts)
    .set(values)
    .where(and(eq(rolloutHosts.rolloutId, member.rolloutId), eq(rolloutHosts.host, member.host)))
    .run();
}

/** Which rollouts still active (owning their hosts) have a member among `names`. */
export function activeOwners(tx: Tx, names: string[]): Array<{ rolloutId: string; host: string }> {
  const owners: Array<{ rolloutId: string; host: string }> = [];
  for (let i = 0; i < names.length; i += 500) {
    owners.push(
      ...tx
        .select({ rolloutId: rolloutHosts.rolloutId, host: rolloutHosts.host })
        .from(rolloutHosts)
        .innerJoin(rollouts, eq(rollouts.id, rolloutHosts.rolloutId))
        .where(and(inArray(rolloutHosts.host, names.slice(i, i + 500)), inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])))
        .all(),
    );
  }
  return owners;
}

/** Each member's state and rollback state, for deciding what a retry takes. */
export function memberResults(db: Db, rolloutId: string): Array<Pick<RolloutHostRow, 'host' | 'state' | 'rollbackState'>> {
  return db
    .select({ host: rolloutHosts.host, state: rolloutHosts.state, rollbackState: rolloutHosts.rollbackState })
    .from(rolloutHosts)
    .where(eq(rolloutHosts.rolloutId, rolloutId))
    .all();
}

/** Member states counted in SQL (no member rows read): the whole rollout, and `wave` on its own. */
export function memberCounts(db: Db, rolloutId: string, wave: number): Counts {
  const rows = statement(
    db,
    `select wave = ? as current, state, count(*) as n, max(finished_at) as lastFinishedAt
     from rollout_hosts where rollout_id = ? group by 1, 2`,
  ).all(wave, rolloutId) as Array<{ current: number; state: RolloutHostState; n: number; lastFinishedAt: number | null }>;
  const counts: Counts = { failed: 0, finished: 0, lastFinishedAt: null, waveSize: 0, wavePending: 0, waveInFlight: 0 };
  for (const { current, state, n, lastFinishedAt } of rows) countMembers(counts, state, n, current !== 0, lastFinishedAt);
  return counts;
}

/** Members of `wave` that hold a manifest and have no result yet, in plan order. */
export function inFlightMembers(db: Db, rolloutId: string, wave: number): WatchedMember[] {
  return statement(
    db,
    `select rollout_id as rolloutId, host, wave, state, issued_at as issuedAt, accepted_at as acceptedAt from rollout_hosts
     where rollout_id = ? and wave = ? and state in (${IN_FLIGHT_PLACEHOLDERS}) order by position`,
  ).all(rolloutId, wave, ...IN_FLIGHT) as WatchedMember[];
}

/** Members of `wave` that reported healthy, in plan order. */
export function healthyMembers(db: Db, rolloutId: string, wave: number): WatchedMember[] {
  return statement(
    db,
    `select rollout_id as rolloutId, host, wave, state, issued_at as issuedAt, accepted_at as acceptedAt from rollout_hosts
     where rollout_id = ? and wave = ? and state = ? order by position`,
  ).all(rolloutId, wave, MEMBER.healthy) as WatchedMember[];
}

/** Up to `limit` pending members of `wave` whose host is not paused, in plan order. */
export function pendingMembers(db: Db, rolloutId: string, wave: number, limit: number): PendingMember[] {
  return statement(
    db,
    `select rh.host as host, rh.target_path as targetPath, h.current_system as currentSystem, h.desired_version as desiredVersion
     from rollout_hosts rh join hosts h on h.name = rh.host
     where rh.rollout_id = ? and rh.wave = ? and rh.state = ? and h.paused = 0 order by rh.position limit ?`,
  ).all(rolloutId, wave, MEMBER.pending, Number.isFinite(limit) ? limit : -1) as PendingMember[];
}

/** The member was sent manifest `version`; `previousSystem` is what its host ran, where a rollback returns it. */
export function markIssued(db: Db, member: MemberKey, version: number, now: number, previousSystem: string | null): void {
  statement(db, `update rollout_hosts set state = ?, manifest_version = ?, issued_at = ?, previous_system = ? where rollout_id = ? and host = ?`).run(
    MEMBER.issued,
    version,
    now,
    previousSystem,
    member.rolloutId,
    member.host,
  );
}

/** The member's host started on its manifest. */
export function markAccepted(db: Db, member: MemberKey, now: number): void {
  statement(db, 'update rollout_hosts set state = ?, accepted_at = ? where rollout_id = ? and host = ?').run(MEMBER['in-progress'], now, member.rolloutId, member.host);
}

/** The member has its result: healthy (its reason cleared), failed or skipped (with why). */
export function markFinished(db: Db, member: MemberKey, state: 'healthy' | 'failed' | 'skipped', reason: string | null, now: number): void {
  statement(db, 'update rollout_hosts set state = ?, finished_at = ?, reason = ? where rollout_id = ? and host = ?').run(state, now, reason, member.rolloutId, member.host);
}

/** The system the member's host ran before the rollout, and the one the rollout gives it. */
export function memberSystems(db: Db, member: MemberKey): { previousSystem: string | null; targetPath: string } {
  return statement(db, 'select previous_system as previousSystem, target_path as targetPath from rollout_hosts where rollout_id = ? and host = ?').get(
    member.rolloutId,
    member.host,
  ) as { previousSystem: string | null; targetPath: string };
}

/** The member was sent manifest `version` taking it back to its previous system. */
export function markRollbackIssued(db: Db, member: MemberKey, version: number, now: number): void {
  statement(db, 'update rollout_hosts set rollback_state = ?, rollback_version = ?, rollback_issued_at = ? where rollout_id = ? and host = ?').run(
    ROLLBACK.issued,
    version,
    now,
    member.rolloutId,
    member.host,
  );
}

/** The result of the member's rollback. */
export function markRollbackResult(db: Db, member: MemberKey, healthy: boolean): void {
  statement(db, 'update rollout_hosts set rollback_state = ? where rollout_id = ? and host = ?').run(
    healthy ? ROLLBACK.healthy : ROLLBACK.failed,
    member.rolloutId,
    member.host,
  );
}

/**
 * A paused rollout's host clocks stand still: on resume, the issue and acceptance times of its
 * members in flight move on by the pause.
 */
export function shiftInFlightClocks(db: Db, rolloutId: string, pausedForMs: number): void {
  statement(
    db,
    `update rollout_hosts set issued_at = issued_at + ?, accepted_at = accepted_at + ?
     where rollout_id = ? and state in (${IN_FLIGHT_PLACEHOLDERS})`,
  ).run(pausedForMs, pausedForMs, rolloutId, ...IN_FLIGHT);
}

/**
 * The rollout member a manifest version belongs to. The manifest row says which rollout issued
 * it, and a renewal keeps the rollout of what it re-signs: so a report on a version re-signed any
 * number of times still finds its rollout.
 */
export function reportedMember(db: Db, host: string, version: number): ReportedMember | undefined {
  const manifest = statement(db, 'select rollout_id as rolloutId from manifests where host = ? and version = ?').get(host, version) as
    | { rolloutId: string | null }
    | undefined;
  if (!manifest?.rolloutId) return undefined;
  return statement(
    db,
    `select rh.rollout_id as rolloutId, rh.wave, rh.state, rh.target_path as targetPath, rh.manifest_version as manifestVersion,
       rh.previous_system as previousSystem, rh.rollback_state as rollbackState, rh.rollback_version as rollbackVersion,
       r.state as rolloutState, r.wave_index as waveIndex
     from rollout_hosts rh join rollouts r on r.id = rh.rollout_id where rh.rollout_id = ? and rh.host = ?`,
  ).get(manifest.rolloutId, host) as ReportedMember | undefined;
}
