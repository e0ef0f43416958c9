import { runBackground } from '../background.js';
import { randomBytes } from 'node:crypto';
import { asc, eq, inArray, sql } from 'drizzle-orm';
import type { Logger } from '../../../shared/src/logger.js';
import {
  waveNumber,
  type Release,
  type RolloutAction,
  type RolloutPlan,
  type RolloutSpec,
  type RolloutState,
} from '../../../shared/src/rollout-api.js';
import type { Clock } from '../clock.js';
import type { Store, StoreTx } from '../db/store.js';
import type { Presence } from '../hosts/presence.js';
import type { ManifestBus } from '../manifests/bus.js';
import { published } from '../manifests/issue.js';
import type { ManifestSigner } from '../manifests/signer.js';
import { appendEvent } from '../events.js';
import type { ReleaseTrust } from '../manifests/statements.js';
import { advanceRollout, beginRollback, startWave, type AdvanceOptions } from './advance.js';
import { activeOwners, insertMembers, memberResults } from './members.js';
import { inWriteLane } from '../db/write-lane.js';
import { retrySpec } from './retry-plan.js';
import { Attempt, openStep, type AdvanceContext } from './step.js';
import { commandVerdict, waveGated } from './transitions.js';
import { planRollout } from './plan.js';
import type { PreflightTarget } from './preflight.js';
import { readRelease } from './releases.js';

/** Wake-ups for the replica running the engine (payload: a rollout id). */
export const ENGINE_WAKE_CHANNEL = 'shoal_engine_wake';
export interface EngineDeps {
  store: Store;
  signer: ManifestSigner;
  releaseTrust: ReleaseTrust;
  clock: Clock;
  bus: ManifestBus;
  presence: Presence;
  logger: Logger;
  manifestTtlMs: number;
}

/** The cache preflight as the audit log keeps it. skipped: it failed and the operator started anyway. */
export interface PreflightRecord {
  outcome: 'passed' | 'failed' | 'not-configured';
  skipped: boolean;
  paths: number;
  problems: string[];
}

/** The cache readiness check of a start, run on the hosts and systems of the start's own plan before anything is written: its refusal refuses the start. */
export type PreflightCheck = (targets: readonly PreflightTarget[]) => Promise<EngineOutcome<PreflightRecord>>;

/**
 * Why the engine refused a command, in the rollout's terms; each caller says it in its own (the
 * operator API maps a kind to an HTTP status, the dashboard to a page or a message).
 * 'preflight-failed' comes from the cache check before a start or retry (checked-start.ts).
 */
export type RefusalKind = 'unknown-release' | 'unknown-rollout' | 'invalid-rollout' | 'rollout-overlap' | 'invalid-transition' | 'nothing-to-retry' | 'preflight-failed';

/** `problems`: each thing wrong, when there is a list (an invalid spec, the rollouts in the way). */
export interface Refusal {
  ok: false;
  kind: RefusalKind;
  message: string;
  problems?: string[];
}

export type EngineOutcome<T> = { ok: true; value: T } | Refusal;

const ADVANCING: RolloutState[] = ['running', 'rolling-back'];

function refuse(kind: RefusalKind, message: string, problems?: string[]): Refusal {
  return problems ? { ok: false, kind, message, problems } : { ok: false, kind, message };
}

/**
 * Drives rollouts: operator commands, agent reports and time all end in `advanceRollout` inside a
 * transaction, and manifests are announced only after that transaction committed. Nothing lives
 * only in memory, so a controller killed at any moment resumes every rollout where it stood.
 */
export class RolloutEngine {
  private readonly listeners = new Set<(rolloutId: string) => void>();
  private timer: NodeJS.Timeout | null = null;
  private readonly context: AdvanceContext;
  /** Rollouts with a batch of pending hosts left to issue, continued on the next event-loop turn. */
  private readonly continuing = new Set<string>();
  /** Continuations whose batch is being issued right now (a tick in progress). */
  private continuingNow = 0;
  private passes = 0;
  /** The timer's pass in progress: a slow pass is not overlapped by the next one. */
  private passing: Promise<void> | null = null;

  constructor(private readonly deps: EngineDeps) {
    this.context = {
      store: deps.store,
      signer: deps.signer,
      releaseTrust: deps.releaseTrust,
      manifestTtlMs: deps.manifestTtlMs,
      connection: (host) => deps.presence.mode(host),
      startedAt: deps.clock.now(),
      offlineSeen: new Map(),
      bakeOfflineSince: new Map(),
      definitions: new Map(),
    };
  }

  /** Listeners hear the id of every rollout whose state or events changed (dashboards, `watch`). */
  onChange(listener: (rolloutId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async plan(spec: RolloutSpec): Promise<EngineOutcome<RolloutPlan>> {
    const planned = await this.planWithRelease(spec);
    return planned.ok ? { ok: true, value: planned.value.plan } : planned;
  }

  /** The plan and the release it was made from (read once: 10,000 rows at 10,000 hosts). */
  private async planWithRelease(spec: RolloutSpec): Promise<EngineOutcome<{ plan: RolloutPlan; release: Release }>> {
    const { store } = this.deps;
    const release = await readRelease(store, spec.release);
    if (!release) return refuse('unknown-release', `no release named "${spec.release}"`);
    const { hosts } = store.t;
    const tags = new Map((await store.q.select({ name: hosts.name, tags: hosts.tags }).from(hosts)).map((row) => [row.name, row.tags] as const));
    const outcome = planRollout(spec, release, tags);
    if (!outcome.ok) return refuse('invalid-rollout', `rollout refused: ${outcome.problems.join('; ')}`, outcome.problems);
    return { ok: true, value: { plan: outcome.plan, release } };
  }

  /**
   * `preflight`: what the cache readiness check found (and whether an operator overrode it), kept in the
   * rollout-started audit event, or the check itself, run on this start's plan (one plan of a
   * 10,000-host release, not two). `retryOf`: the finished rollout whose unfinished hosts this one retries.
   */
  async start(
    spec: RolloutSpec,
    actor: string,
    options: { preflight?: PreflightRecord | PreflightCheck | null; retryOf?: string | null } = {},
  ): Promise<EngineOutcome<string>> {
    const { store } = this.deps;
    const retryOf = options.retryOf ?? null;
    const planned = await this.planWithRelease(spec);
    if (!planned.ok) return planned;
    const { plan, release } = planned.value;
    const targets = new Map(release.hosts.map((h) => [h.host, h.storePath]));
    const planHosts = plan.waves.flatMap((w) => w.hosts);
    let preflight: PreflightRecord | null = null;
    if (typeof options.preflight === 'function') {
      const checked = await options.preflight(planHosts.map((host) => ({ host, storePath: targets.get(host)! })));
      if (!checked.ok) return checked;
      preflight = checked.value;
    } else {
      preflight = options.preflight ?? null;
    }
    const id = `ro-${randomBytes(4).toString('hex')}`;
    const now = this.deps.clock.now();

    return this.transact(async (tx, attempt): Promise<EngineOutcome<string>> => {
      const busy = await activeOwners(store, planHosts);
      if (busy.length > 0) {
        const problems = this.overlapProblems(busy);
        return refuse('rollout-overlap', `rollout refused: ${problems.join('; ')}; wait for it, or abort it first`, problems);
      }
      await tx
        .insert(store.t.rollouts)
        .values({
          id,
          release: spec.release,
          spec,
          plan,
          state: 'running',
          waveIndex: 0,
          wavePhase: 'deploying',
          createdAt: now,
          createdBy: actor,
          updatedAt: now,
          retryOf,
        });
      await insertMembers(store, id, plan, targets);
      await store.grewInBulk(store.t.rolloutHosts);
      const step = (await openStep(this.context, id, now, attempt))!;
      await step.event('rollout-started', { release: spec.release, actor, waves: plan.waves.map((w) => w.hosts.length), spec, retryOf, preflight }, null);
      if (retryOf !== null) {
        await appendEvent(store, { host: null, at: now, kind: 'rollout-retried', actor, rolloutId: retryOf, data: { retryId: id, hosts: planHosts.length } });
      }
      await startWave(step, 0);
      return { ok: true, value: id };
    }, id);
  }

  async act(id: string, action: RolloutAction, actor: string): Promise<EngineOutcome<RolloutState>> {
    const now = this.deps.clock.now();
    return this.transact(async (_tx, attempt): Promise<EngineOutcome<RolloutState>> => {
      const step = await openStep(this.context, id, now, attempt);
      if (!step) return refuse('unknown-rollout', `no rollout with id "${id}"`);
      const state = step.rollout.state;
      const wave = step.rollout.waveIndex;
      const verdict = commandVerdict(action, id, state, { gated: waveGated(step.plan, wave, step.rollout.approvedThrough) });
      if (!verdict.allowed) return refuse('invalid-transition', verdict.message);
      switch (action) {
        case 'approve':
          await step.update({ state: verdict.next, approvedThrough: wave, waveStartedAt: now });
          await step.event('rollout-approved', { actor, wave: waveNumber(wave) });
          await step.event('rollout-wave-started', { wave: waveNumber(wave), canary: step.plan.waves[wave]!.canary, hosts: step.plan.waves[wave]!.hosts });
          break;
        case 'pause':
          await step.update({ state: verdict.next, pausedAt: now });
          await step.event('rollout-paused', { actor, wave: waveNumber(wave) });
          break;
        case 'resume': {
          const pausedFor = now - (step.rollout.pausedAt ?? now);
          const bakeStartedAt = step.rollout.bakeStartedAt === null ? null : step.rollout.bakeStartedAt + pausedFor;
          const waveStartedAt = step.rollout.waveStartedAt === null ? null : step.rollout.waveStartedAt + pausedFor;
          await step.update({ state: verdict.next, pausedAt: null, bakeStartedAt, waveStartedAt });
          await step.shiftHostClocks(pausedFor);
          await step.event('rollout-resumed', { actor, pausedForMs: pausedFor });
          break;
        }
        case 'abort':
          // A rolling-back rollout can be aborted too: its hosts keep the manifests they were sent
          // (their desired state stays the previous system), but it no longer owns them.
          await step.finish(verdict.next, 'rollout-aborted', `aborted by ${actor}${state === 'rolling-back' ? ' while rolling back' : ''}`);
          break;
        case 'rollback': {
          // A finished rollout's hosts may belong to a newer rollout by now; rolling them back would
          // make two rollouts change the same hosts at once.
          const others = (await activeOwners(this.deps.store, (await step.members()).map((m) => m.host))).filter((o) => o.rolloutId !== id);
          if (others.length > 0) {
            const problems = this.overlapProblems(others);
            return refuse('rollout-overlap', `rollback of ${id} refused: ${problems.join('; ')}; wait for it, or abort it first`, problems);
          }
          await beginRollback(step, `rollback requested by ${actor}`);
          await step.update({ finishedAt: null });
          break;
        }
      }
      return { ok: true, value: step.rollout.state };
    }, id);
  }

  /**
   * Starts a new rollout of the same release, linked to finished rollout `id`, for only the hosts
   * it left without a result: failed, skipped, or never reached (pending, or in flight when it
   * ended). Its waves keep the old order and approvals, minus the hosts already healthy.
   */
  /** A new rollout for the hosts the finished rollout `id` left unfinished; `preflight` as for start. */
  async retry(id: string, actor: string, preflight: PreflightRecord | PreflightCheck | null = null): Promise<EngineOutcome<string>> {
    const spec = await this.retrySpec(id);
    if (!spec.ok) return spec;
    return this.start(spec.value, actor, { retryOf: id, preflight });
  }

  /** What a retry of `id` would start: its release and settings, for only its unfinished hosts, in their waves. */
  async retrySpec(id: string): Promise<EngineOutcome<RolloutSpec>> {
    const { store } = this.deps;
    const { rollouts } = store.t;
    const [old] = await store.q.select({ state: rollouts.state, spec: rollouts.spec, plan: rollouts.plan }).from(rollouts).where(eq(rollouts.id, id)).limit(1);
    if (!old) return refuse('unknown-rollout', `no rollout with id "${id}"`);
    const verdict = commandVerdict('retry', id, old.state);
    if (!verdict.allowed) return refuse('invalid-transition', verdict.message);
    const spec = retrySpec(old.spec as RolloutSpec, old.plan as RolloutPlan, await memberResults(store, id));
    if (!spec) return refuse('nothing-to-retry', `rollout ${id} left no failed, skipped or unreached host to retry`);
    return { ok: true, value: spec };
  }

  /**
   * Whether this replica runs the engine (holds the engine lease; always on SQLite). A replica that
   * does not hands wake-ups to the one that does, so rollouts advance on one replica only.
   */
  leading = true;

  /**
   * Advances `id` soon after a report or a command changed what it waits for: here when this
   * replica runs the engine, else on the replica that does (a notification it ticks on).
   */
  async wake(id: string): Promise<void> {
    if (this.leading) return this.tick(id, { deadlines: false });
    await this.deps.store.notifications.publish(ENGINE_WAKE_CHANNEL, id);
  }

  /**
   * Advances one rollout now (after a report, a command, or on the timer). Ticks that only react
   * to results pass `{ deadlines: false }`: host deadlines are the timer's job.
   */
  async tick(id: string, options: AdvanceOptions = { deadlines: true }): Promise<void> {
    await this.transact(async () => ({ ok: true, value: undefined }), id, options);
  }

  /**
   * Passes over every advancing rollout completed since start (`tickAll`: the timer's and the one at
   * start). A count that stops growing means deadlines, bakes and offline waits have stopped moving.
   */
  /** Rollouts whose next batch is scheduled and has not run yet: 0 once a wave's issuing has settled. */
  get continuationsPending(): number {
    return this.continuing.size + this.continuingNow;
  }

  get ticks(): number {
    return this.passes;
  }

  async tickAll(): Promise<void> {
    const { store } = this.deps;
    const { rollouts } = store.t;
    const ids = await store.q.select({ id: rollouts.id }).from(rollouts).where(inArray(rollouts.state, ADVANCING)).orderBy(asc(rollouts.createdAt));
    for (const { id } of ids) {
      try {
        await this.tick(id);
      } catch (error) {
        this.deps.logger.error({ err: error, rolloutId: id }, 'rollout tick failed');
      }
    }
    this.passes += 1;
  }

  startTimer(intervalMs: number): void {
    this.stopTimer();
    this.timer = setInterval(() => runBackground(this.deps.logger, 'rollout tick', () => this.timerPass()), intervalMs);
    this.timer.unref();
  }

  stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The timer's pass; skipped while the previous one still runs. */
  private async timerPass(): Promise<void> {
    if (this.passing) return;
    this.passing = this.tickAll().finally(() => {
      this.passing = null;
    });
    await this.passing;
  }

  /**
   * Runs `body`, then advances the rollout in the same transaction; announces manifests and
   * changes only after commit. On PostgreSQL the body may run more than once: each run starts
   * from a fresh Attempt, the previous run's in-memory changes undone.
   */
  private async transact<T>(
    body: (tx: StoreTx, attempt: Attempt) => Promise<EngineOutcome<T>>,
    rolloutId: string,
    options: AdvanceOptions = { deadlines: true },
  ): Promise<EngineOutcome<T>> {
    // One attempt for the whole transaction: what the command issued (an operator's rollback) and
    // what advancing issued are announced alike, after commit; a rolled-back transaction announces nothing.
    let attempt = new Attempt();
    let more = false;
    const before = await this.updatedAt(rolloutId);
    let outcome: EngineOutcome<T>;
    try {
      // In the replica's write lane: a tick counts the members report groups move (see write-lane.ts).
      outcome = await inWriteLane(this.deps.store, () =>
        this.deps.store.transaction(async (tx) => {
          attempt.revert();
          attempt = new Attempt();
          more = false;
          await this.claim(rolloutId);
          const result = await body(tx, attempt);
          if (result.ok) ({ more } = await advanceRollout(this.context, rolloutId, this.deps.clock.now(), options, attempt));
          else attempt.issued.length = 0;
          return result;
        }),
      );
    } catch (error) {
      attempt.revert();
      throw error;
    }
    const { issued } = attempt;
    for (const row of issued) this.deps.bus.publish(published(row));
    if (more) this.continueLater(rolloutId);
    if (outcome.ok && (issued.length > 0 || before !== (await this.updatedAt(rolloutId)))) {
      for (const listener of this.listeners) listener(rolloutId);
    }
    return outcome;
  }

  /**
   * Writes the rollout's row (changing nothing) first thing in each of its transactions. Two
   * transactions on one rollout then conflict on that row, and PostgreSQL runs the later one again
   * after the first commits: a batch that continues a wave cannot commit after a pause or an abort
   * the operator was already told about (serializable alone would allow ordering it before them).
   * SQLite has one writer, so there it costs one statement.
   */
  private async claim(rolloutId: string): Promise<void> {
    const { store } = this.deps;
    const { rollouts } = store.t;
    await store.q.update(rollouts).set({ updatedAt: sql`${rollouts.updatedAt}` }).where(eq(rollouts.id, rolloutId));
  }

  private async updatedAt(rolloutId: string): Promise<number | undefined> {
    const { store } = this.deps;
    const { rollouts } = store.t;
    const [row] = await store.q.select({ updatedAt: rollouts.updatedAt }).from(rollouts).where(eq(rollouts.id, rolloutId)).limit(1);
    return row?.updatedAt;
  }

  /**
   * Issues the next batch of a large wave on the next event-loop turn, after what is waiting there
   * (agents' messages, the sockets' writes of the batch just announced). Each batch is its own
   * transaction; a controller that stops between batches leaves the rest pending, and the timer's
   * tick after a restart continues from there.
   */
  private continueLater(rolloutId: string): void {
    if (this.continuing.has(rolloutId)) return;
    this.continuing.add(rolloutId);
    setImmediate(() => {
      this.continuing.delete(rolloutId);
      // Counted until the batch has committed and scheduled the next one, so continuationsPending never reads 0 between batches.
      this.continuingNow += 1;
      this.tick(rolloutId, { deadlines: false })
        .catch((error: unknown) => this.deps.logger.error({ err: error, rolloutId }, 'issuing the next batch of a wave failed'))
        .finally(() => {
          this.continuingNow -= 1;
        });
    });
  }

  private overlapProblems(busy: Array<{ rolloutId: string; host: string }>): string[] {
    const byRollout = new Map<string, string[]>();
    for (const { rolloutId, host } of busy) byRollout.set(rolloutId, [...(byRollout.get(rolloutId) ?? []), host]);
    return [...byRollout].map(
      ([other, names]) => `rollout ${other} is still active on ${names.length} of these hosts (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''})`,
    );
  }
}
