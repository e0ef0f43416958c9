import { eq } from 'drizzle-orm';
import type { ConnectionMode, EventKind } from '../../../shared/src/operator-api.js';
import { waveNumber, type RolloutPlan, type RolloutSpec, type RolloutState } from '../../../shared/src/rollout-api.js';
import type { ManifestRow, RolloutHostRow, RolloutRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { appendEvent, appendEvents, type NewEvent } from '../events.js';
import { issueBatchInTransaction, issueInTransaction, type BatchItem, type IssueCause } from '../manifests/issue.js';
import type { ManifestSigner } from '../manifests/signer.js';
import { authoriseFromRelease, authoriseStatement, type ReleaseTrust } from '../manifests/statements.js';
import {
  finishMember,
  healthyMembers,
  inFlightMembers,
  listMembers,
  markIssued,
  markRollbackIssued,
  memberCounts,
  memberSystems,
  pendingMembers,
  shiftInFlightClocks,
  updateMember,
  type WatchedMember,
} from './members.js';
import { isActive, type Counts } from './transitions.js';

export interface AdvanceContext {
  /** Every query of a step runs in the transaction open on it (`store.q`). */
  store: Store;
  signer: ManifestSigner;
  releaseTrust: ReleaseTrust;
  manifestTtlMs: number;
  connection(host: string): ConnectionMode;
  /**
   * When this controller process started: no host deadline counts time before it, because a
   * host cannot report to a controller that is down (its report waits in the agent's outbox).
   */
  startedAt: number;
  /**
   * The last time each host with an issued manifest was seen offline, in memory only: a host
   * that comes back within the offline wait gets its health deadline from its return.
   */
  offlineSeen: Map<string, number>;
  /**
   * Since when each healthy host of a baking wave has been offline (key: rollout id and host), in
   * memory only: the bake fails a host that stays away, not one whose connection blinked.
   */
  bakeOfflineSince: Map<string, number>;
  /**
   * Spec and plan of active rollouts, parsed once: they never change after the start, and a
   * 10,000-host plan is 200 KB of JSON that every tick would otherwise parse again.
   */
  definitions: Map<string, { spec: RolloutSpec; plan: RolloutPlan }>;
}

/** The rollout row without its spec and plan (those come from AdvanceContext.definitions). */
export type RolloutProgress = Omit<RolloutRow, 'spec' | 'plan'>;

/**
 * What one run of a transaction body did besides its writes: the manifests it issued, announced
 * only after commit, and its changes to the context's in-memory maps, undone when the body is run
 * again (PostgreSQL, after a conflict) or rolled back, so the next run decides from the same state.
 */
export class Attempt {
  /** Every manifest issued in this transaction, whoever asked for it: the caller announces them all after commit. */
  readonly issued: ManifestRow[] = [];
  private readonly undo: Array<() => void> = [];

  set<K, V>(map: Map<K, V>, key: K, value: V): void {
    this.remember(map, key);
    map.set(key, value);
  }

  delete<K, V>(map: Map<K, V>, key: K): void {
    if (!map.has(key)) return;
    this.remember(map, key);
    map.delete(key);
  }

  /** Puts the maps back as they were before this attempt. */
  revert(): void {
    for (const step of this.undo.reverse()) step();
    this.undo.length = 0;
    this.issued.length = 0;
  }

  private remember<K, V>(map: Map<K, V>, key: K): void {
    const had = map.has(key);
    const old = map.get(key);
    this.undo.push(() => (had ? map.set(key, old as V) : map.delete(key)));
  }
}

/** The key of a host in AdvanceContext.bakeOfflineSince. */
export function bakeKey(rolloutId: string, host: string): string {
  return `${rolloutId}\0${host}`;
}

/**
 * One transition of one rollout, inside its transaction: what changes the rollout row, its
 * members and the audit log. `rollout` is kept in step with the database row it was read from.
 */
export class Step {
  /** Set when pending hosts of the wave were left for the next transaction (ISSUE_BATCH reached). */
  more = false;
  deadlines = true;
  constructor(
    readonly ctx: AdvanceContext,
    readonly rollout: RolloutProgress,
    readonly spec: RolloutSpec,
    readonly plan: RolloutPlan,
    readonly now: number,
    readonly attempt: Attempt,
  ) {}

  /** Every manifest issued in this transaction. */
  get issued(): ManifestRow[] {
    return this.attempt.issued;
  }

  private get store(): Store {
    return this.ctx.store;
  }

  event(kind: EventKind, data: Record<string, unknown>, host: string | null = null): Promise<void> {
    return appendEvent(this.store, this.eventOf(kind, data, host));
  }

  private eventOf(kind: EventKind, data: Record<string, unknown>, host: string | null): NewEvent {
    // Events about a wave say of how many, so a webhook's text can read "wave 2 of 3" on its own.
    const withTotal = 'wave' in data ? { ...data, waves: this.plan.waves.length } : data;
    return { host, at: this.now, kind, actor: `rollout:${this.rollout.id}`, rolloutId: this.rollout.id, data: withTotal };
  }

  async update(values: Partial<RolloutProgress>): Promise<void> {
    const { rollouts } = this.store.t;
    Object.assign(this.rollout, values, { updatedAt: this.now });
    await this.store.q.update(rollouts).set({ ...values, updatedAt: this.now }).where(eq(rollouts.id, this.rollout.id));
    // Dropping a cached definition needs no undo: it is read again when wanted.
    if (values.state !== undefined && !isActive(values.state)) this.ctx.definitions.delete(this.rollout.id);
  }

  async finish(state: RolloutState, kind: EventKind, reason: string | null): Promise<void> {
    await this.update({ state, reason, finishedAt: this.now });
    await this.event(kind, { reason, wave: waveNumber(this.rollout.waveIndex) });
  }

  members(wave?: number): Promise<RolloutHostRow[]> {
    return listMembers(this.store, this.rollout.id, wave);
  }

  setMember(member: RolloutHostRow, values: Partial<RolloutHostRow>): Promise<void> {
    return updateMember(this.store, member, values);
  }

  /**
   * Issues `storePath` to `host` with the release statement that authorises it (this rollout's
   * release first); returns why not when none does (two-key mode: only CI authorises systems).
   * `previousVersion`: the host's desired version, when the caller has read it already.
   */
  async issue(host: string, storePath: string, previousVersion?: number | null): Promise<ManifestRow | string> {
    const authorised = await authoriseStatement(this.store, this.ctx.releaseTrust, host, storePath, { now: this.now, release: this.rollout.release });
    if (!authorised.ok) return authorised.reason;
    const row = await issueInTransaction(
      this.store,
      this.ctx.signer,
      this.now,
      this.ctx.manifestTtlMs,
      { host, storePath, action: this.spec.action, rolloutId: this.rollout.id, authority: authorised.authority },
      this.issueCause(),
      previousVersion,
    );
    this.issued.push(row);
    return row;
  }

  issueCause(): IssueCause {
    return { kind: 'manifest-issued', actor: `rollout:${this.rollout.id}` };
  }

  /** A manifest this rollout would have issued but no statement authorises: the host keeps what it has, the log says why. */
  withheld(host: string, storePath: string, reason: string): Promise<void> {
    return this.event('manifest-withheld', { storePath, reason }, host);
  }

  async fail(member: WatchedMember, reason: string, state: 'failed' | 'skipped' = 'failed'): Promise<void> {
    await finishMember(this.store, member, state, reason, this.now);
    member.state = state;
    await this.event(state === 'failed' ? 'rollout-host-failed' : 'rollout-host-skipped', { reason, wave: waveNumber(member.wave) }, member.host);
  }

  /**
   * Takes this rollout's manifest back from a host that never answered it (offline past its wait):
   * its desired state returns to the system it ran, so when it comes back it does not deploy a
   * release that no rollout is watching any more.
   */
  async withdraw(member: WatchedMember): Promise<void> {
    const row = await memberSystems(this.store, member);
    if (!row.previousSystem || row.previousSystem === row.targetPath) return;
    const manifest = await this.issue(member.host, row.previousSystem);
    if (typeof manifest === 'string') return this.withheld(member.host, row.previousSystem, manifest);
    await markRollbackIssued(this.store, member, manifest.version, this.now);
  }

  /** Hosts of `wave` that hold a manifest and have no result yet. */
  inFlight(wave: number): Promise<WatchedMember[]> {
    return inFlightMembers(this.store, this.rollout.id, wave);
  }

  /** Hosts of `wave` that reported healthy: the bake watches them. */
  healthy(wave: number): Promise<WatchedMember[]> {
    return healthyMembers(this.store, this.rollout.id, wave);
  }

  counts(wave: number): Promise<Counts> {
    return memberCounts(this.store, this.rollout.id, wave);
  }

  /**
   * Issues up to `limit` pending hosts of `wave`, in plan order. One query reads what each needs
   * (its target, the system it runs now, its desired version, its own reboot settings, the
   * release's statement for it); each host's manifest and its member
   * row change in this transaction, so no host is issued twice whatever happens next. A host whose
   * target no trusted statement authorises fails at once, with the reason, and is never issued.
   * A paused host is not issued: it stays pending, so its wave waits for it. `full`: the batch
   * took all `limit` hosts it asked for, so more unpaused hosts may be pending (fewer: none is).
   */
  async issuePending(wave: number, limit: number): Promise<{ issued: number; refused: number; full: boolean }> {
    const pending = await pendingMembers(this.store, this.rollout.id, this.rollout.release, wave, limit);
    const authorisations = await authoriseFromRelease(
      this.store,
      this.ctx.releaseTrust,
      pending.map((member) => ({ host: member.host, storePath: member.targetPath, statement: member.statement })),
      this.now,
    );
    let refused = 0;
    const batch: BatchItem[] = [];
    // Read before issuing: the system each runs now is where a rollback returns the host.
    const previousSystems = new Map<string, string | null>();
    for (const member of pending) {
      const authorised = authorisations.get(member.host)!;
      if (!authorised.ok) {
        refused += 1;
        await this.fail({ rolloutId: this.rollout.id, host: member.host, wave, state: 'pending', issuedAt: null, acceptedAt: null }, authorised.reason);
        continue;
      }
      previousSystems.set(member.host, member.currentSystem);
      batch.push({
        desired: { host: member.host, storePath: member.targetPath, action: this.spec.action, rolloutId: this.rollout.id, authority: authorised.authority },
        previousVersion: member.desiredVersion,
        // The spec never changes after the start: the cached one says what the stored one would.
        reboot: { own: member.reboot, windowsForAll: this.spec.activateWithinWindows === true },
      });
    }
    // The member rows are written while the batch is being signed (see issueBatchInTransaction),
    // with one event per host: it says what `manifest-issued` would (the rollout's audit log and
    // the host's history both show it), half the rows of two events per host.
    const rows = await issueBatchInTransaction(this.store, this.ctx.signer, this.now, this.ctx.manifestTtlMs, batch, null, async (planned) => {
      await markIssued(
        this.store,
        this.rollout.id,
        planned.map(({ host, version }) => ({ host, version, previousSystem: previousSystems.get(host) ?? null })),
        this.now,
      );
      await appendEvents(
        this.store,
        planned.map(({ host, version, storePath, action, floor }) =>
          this.eventOf('rollout-host-issued', { wave: waveNumber(wave), version, storePath, action, floor, rolloutId: this.rollout.id, previousSystem: previousSystems.get(host) ?? null }, host),
        ),
      );
    });
    this.issued.push(...rows);
    return { issued: pending.length - refused, refused, full: pending.length === limit };
  }

  connection(host: string): ConnectionMode {
    return this.ctx.connection(host);
  }

  /** The moment a host deadline starts counting: never before this controller could hear the host. */
  deadlineBase(since: number, host?: string): number {
    return Math.max(since, this.ctx.startedAt, host === undefined ? 0 : (this.ctx.offlineSeen.get(host) ?? 0));
  }

  sawOffline(host: string): void {
    this.attempt.set(this.ctx.offlineSeen, host, this.now);
  }

  /**
   * A paused rollout's host clocks stand still, as its bake and wave clocks do: on resume, the
   * issue and acceptance times of hosts in flight move on by the pause, and offline stretches
   * seen before it start again.
   */
  async shiftHostClocks(pausedForMs: number): Promise<void> {
    await shiftInFlightClocks(this.store, this.rollout.id, pausedForMs);
    const prefix = bakeKey(this.rollout.id, '');
    for (const key of [...this.ctx.bakeOfflineSince.keys()]) if (key.startsWith(prefix)) this.attempt.delete(this.ctx.bakeOfflineSince, key);
  }
}

/** The step of `rolloutId` in the transaction open on `ctx.store`; null when there is no such rollout. */
export async function openStep(ctx: AdvanceContext, rolloutId: string, now: number, attempt: Attempt): Promise<Step | null> {
  const { rollouts } = ctx.store.t;
  const [rollout] = await ctx.store.q
    .select({
      id: rollouts.id,
      release: rollouts.release,
      state: rollouts.state,
      waveIndex: rollouts.waveIndex,
      wavePhase: rollouts.wavePhase,
      waveStartedAt: rollouts.waveStartedAt,
      bakeStartedAt: rollouts.bakeStartedAt,
      pausedAt: rollouts.pausedAt,
      approvedThrough: rollouts.approvedThrough,
      reason: rollouts.reason,
      createdAt: rollouts.createdAt,
      createdBy: rollouts.createdBy,
      updatedAt: rollouts.updatedAt,
      finishedAt: rollouts.finishedAt,
      retryOf: rollouts.retryOf,
    })
    .from(rollouts)
    .where(eq(rollouts.id, rolloutId))
    .limit(1);
  if (!rollout) return null;
  let definition = ctx.definitions.get(rolloutId);
  if (!definition) {
    const [row] = await ctx.store.q.select({ spec: rollouts.spec, plan: rollouts.plan }).from(rollouts).where(eq(rollouts.id, rolloutId)).limit(1);
    // A cached definition needs no undo: spec and plan never change, and a rolled-back start leaves an id nobody asks for.
    definition = { spec: row!.spec as RolloutSpec, plan: row!.plan as RolloutPlan };
    if (isActive(rollout.state)) ctx.definitions.set(rolloutId, definition);
  }
  return new Step(ctx, rollout, definition.spec, definition.plan, now, attempt);
}
