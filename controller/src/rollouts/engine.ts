import { runBackground } from '../background.js';
import { randomBytes } from 'node:crypto';
import { asc, eq, inArray, sql } from 'drizzle-orm';
import type { Logger } from '../../../shared/src/logger.js';
import type { Report } from '../../../shared/src/protocol.js';
import {
  waveNumber,
  type RolloutAction,
  type RolloutPlan,
  type RolloutSpec,
  type RolloutState,
} from '../../../shared/src/rollout-api.js';
import type { Clock } from '../clock.js';
import type { Db, Tx } from '../db/open.js';
import { prepared } from '../db/prepared.js';
import { hosts, rollouts, type ManifestRow } from '../db/schema.js';
import type { Presence } from '../hosts/presence.js';
import type { ManifestBus } from '../manifests/bus.js';
import { published } from '../manifests/issue.js';
import type { ManifestSigner } from '../manifests/signer.js';
import { appendEvent } from '../events.js';
import type { ReleaseTrust } from '../manifests/statements.js';
import { advanceRollout, beginRollback, startWave, type AdvanceOptions } from './advance.js';
import { activeOwners, insertMembers, memberResults } from './members.js';
import { recordReport } from './report.js';
import { retrySpec } from './retry-plan.js';
import { openStep, type AdvanceContext } from './step.js';
import { commandVerdict, waveGated } from './transitions.js';
import { planRollout } from './plan.js';
import { readReleaseSync } from './releases.js';

export interface EngineDeps {
  db: Db;
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
  private passes = 0;

  constructor(private readonly deps: EngineDeps) {
    this.context = {
      db: deps.db,
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

  plan(spec: RolloutSpec): EngineOutcome<RolloutPlan> {
    const release = readReleaseSync(this.deps.db, spec.release);
    if (!release) return refuse('unknown-release', `no release named "${spec.release}"`);
    const tags = new Map(
      this.deps.db.select({ name: hosts.name, tags: hosts.tags }).from(hosts).all().map((row) => [row.name, row.tags] as const),
    );
    const outcome = planRollout(spec, release, tags);
    if (!outcome.ok) return refuse('invalid-rollout', `rollout refused: ${outcome.problems.join('; ')}`, outcome.problems);
    return { ok: true, value: outcome.plan };
  }

  /**
   * `preflight`: what the cache readiness check found (and whether an operator overrode it), kept in the
   * rollout-started audit event. `retryOf`: the finished rollout whose unfinished hosts this one retries.
   */
  start(spec: RolloutSpec, actor: string, options: { preflight?: PreflightRecord | null; retryOf?: string | null } = {}): EngineOutcome<string> {
    const preflight = options.preflight ?? null;
    const retryOf = options.retryOf ?? null;
    const planned = this.plan(spec);
    if (!planned.ok) return planned;
    const plan = planned.value;
    const release = readReleaseSync(this.deps.db, spec.release)!;
    const targets = new Map(release.hosts.map((h) => [h.host, h.storePath]));
    const planHosts = plan.waves.flatMap((w) => w.hosts);
    const id = `ro-${randomBytes(4).toString('hex')}`;
    const now = this.deps.clock.now();

    const outcome = this.transact((tx, issued): EngineOutcome<string> => {
      const busy = activeOwners(tx, planHosts);
      if (busy.length > 0) {
        const problems = this.overlapProblems(busy);
        return refuse('rollout-overlap', `rollout refused: ${problems.join('; ')}; wait for it, or abort it first`, problems);
      }
      tx.insert(rollouts)
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
        })
        .run();
      insertMembers(this.deps.db, id, plan, targets);
      const step = openStep(tx, this.context, id, now, issued)!;
      step.event('rollout-started', { release: spec.release, actor, waves: plan.waves.map((w) => w.hosts.length), spec, retryOf, preflight }, null);
      if (retryOf !== null) {
        appendEvent(this.deps.db, { host: null, at: now, kind: 'rollout-retried', actor, rolloutId: retryOf, data: { retryId: id, hosts: planHosts.length } });
      }
      startWave(step, 0);
      return { ok: true, value: id };
    }, id);
    return outcome;
  }

  act(id: string, action: RolloutAction, actor: string): EngineOutcome<RolloutState> {
    const now = this.deps.clock.now();
    return this.transact((tx, issued): EngineOutcome<RolloutState> => {
      const step = openStep(tx, this.context, id, now, issued);
      if (!step) return refuse('unknown-rollout', `no rollout with id "${id}"`);
      const state = step.rollout.state;
      const wave = step.rollout.waveIndex;
      const verdict = commandVerdict(action, id, state, { gated: waveGated(step.plan, wave, step.rollout.approvedThrough) });
      if (!verdict.allowed) return refuse('invalid-transition', verdict.message);
      switch (action) {
        case 'approve':
          step.update({ state: verdict.next, approvedThrough: wave, waveStartedAt: now });
          step.event('rollout-approved', { actor, wave: waveNumber(wave) });
          step.event('rollout-wave-started', { wave: waveNumber(wave), canary: step.plan.waves[wave]!.canary, hosts: step.plan.waves[wave]!.hosts });
          break;
        case 'pause':
          step.update({ state: verdict.next, pausedAt: now });
          step.event('rollout-paused', { actor, wave: waveNumber(wave) });
          break;
        case 'resume': {
          const pausedFor = now - (step.rollout.pausedAt ?? now);
          const bakeStartedAt = step.rollout.bakeStartedAt === null ? null : step.rollout.bakeStartedAt + pausedFor;
          const waveStartedAt = step.rollout.waveStartedAt === null ? null : step.rollout.waveStartedAt + pausedFor;
          step.update({ state: verdict.next, pausedAt: null, bakeStartedAt, waveStartedAt });
          step.shiftHostClocks(pausedFor);
          step.event('rollout-resumed', { actor, pausedForMs: pausedFor });
          break;
        }
        case 'abort':
          // A rolling-back rollout can be aborted too: its hosts keep the manifests they were sent
          // (their desired state stays the previous system), but it no longer owns them.
          step.finish(verdict.next, 'rollout-aborted', `aborted by ${actor}${state === 'rolling-back' ? ' while rolling back' : ''}`);
          break;
        case 'rollback': {
          // A finished rollout's hosts may belong to a newer rollout by now; rolling them back would
          // make two rollouts change the same hosts at once.
          const others = activeOwners(tx, step.members().map((m) => m.host)).filter((o) => o.rolloutId !== id);
          if (others.length > 0) {
            const problems = this.overlapProblems(others);
            return refuse('rollout-overlap', `rollback of ${id} refused: ${problems.join('; ')}; wait for it, or abort it first`, problems);
          }
          beginRollback(step, `rollback requested by ${actor}`);
          step.update({ finishedAt: null });
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
  retry(id: string, actor: string, preflight: PreflightRecord | null = null): EngineOutcome<string> {
    const spec = this.retrySpec(id);
    if (!spec.ok) return spec;
    return this.start(spec.value, actor, { retryOf: id, preflight });
  }

  /** What a retry of `id` would start: its release and settings, for only its unfinished hosts, in their waves. */
  retrySpec(id: string): EngineOutcome<RolloutSpec> {
    const { db } = this.deps;
    const old = db.select({ state: rollouts.state, spec: rollouts.spec, plan: rollouts.plan }).from(rollouts).where(eq(rollouts.id, id)).get();
    if (!old) return refuse('unknown-rollout', `no rollout with id "${id}"`);
    const verdict = commandVerdict('retry', id, old.state);
    if (!verdict.allowed) return refuse('invalid-transition', verdict.message);
    const spec = retrySpec(old.spec as RolloutSpec, old.plan as RolloutPlan, memberResults(db, id));
    if (!spec) return refuse('nothing-to-retry', `rollout ${id} left no failed, skipped or unreached host to retry`);
    return { ok: true, value: spec };
  }

  /**
   * Called inside the transaction that stores a report (open on the engine's database); returns
   * the rollout to tick after commit.
   */
  recordReport(_tx: Tx, host: string, report: Report): string | null {
    return recordReport(this.deps.db, host, report, this.deps.clock.now());
  }

  /**
   * Advances one rollout now (after a report, a command, or on the timer). Ticks that only react
   * to results pass `{ deadlines: false }`: host deadlines are the timer's job.
   */
  tick(id: string, options: AdvanceOptions = { deadlines: true }): void {
    this.transact(() => ({ ok: true, value: undefined }), id, options);
  }

  /**
   * Passes over every advancing rollout completed since start (`tickAll`: the timer's and the one at
   * start). A count that stops growing means deadlines, bakes and offline waits have stopped moving.
   */
  /** Rollouts whose next batch is scheduled and has not run yet: 0 once a wave's issuing has settled. */
  get continuationsPending(): number {
    return this.continuing.size;
  }

  get ticks(): number {
    return this.passes;
  }

  tickAll(): void {
    const ids = this.deps.db
      .select({ id: rollouts.id })
      .from(rollouts)
      .where(inArray(rollouts.state, ADVANCING))
      .orderBy(asc(rollouts.createdAt))
      .all();
    for (const { id } of ids) {
      try {
        this.tick(id);
      } catch (error) {
        this.deps.logger.error({ err: error, rolloutId: id }, 'rollout tick failed');
      }
    }
    this.passes += 1;
  }

  startTimer(intervalMs: number): void {
    this.stopTimer();
    this.timer = setInterval(() => runBackground(this.deps.logger, 'rollout tick', () => this.tickAll()), intervalMs);
    this.timer.unref();
  }

  stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Runs `body`, then advances the rollout in the same transaction; announces manifests and
   * changes only after commit.
   */
  private transact<T>(
    body: (tx: Tx, issued: ManifestRow[]) => EngineOutcome<T>,
    rolloutId: string,
    options: AdvanceOptions = { deadlines: true },
  ): EngineOutcome<T> {
    // One list for the whole transaction: what the command issued (an operator's rollback) and
    // what advancing issued are announced alike, after commit; a rolled-back transaction clears it.
    let issued: ManifestRow[] = [];
    let more = false;
    const before = this.updatedAt(rolloutId);
    const outcome = this.deps.db.transaction((tx) => {
      issued = [];
      const result = body(tx, issued);
      if (result.ok) ({ more } = advanceRollout(tx, this.context, rolloutId, this.deps.clock.now(), options, issued));
      else issued = [];
      return result;
    });
    for (const row of issued) this.deps.bus.publish(published(row));
    if (more) this.continueLater(rolloutId);
    if (outcome.ok && (issued.length > 0 || before !== this.updatedAt(rolloutId))) {
      for (const listener of this.listeners) listener(rolloutId);
    }
    return outcome;
  }

  private updatedAt(rolloutId: string): number | undefined {
    const { db } = this.deps;
    return prepared(db, 'rollouts.updatedAt', () =>
      db.select({ updatedAt: rollouts.updatedAt }).from(rollouts).where(eq(rollouts.id, sql.placeholder('id'))).prepare(),
    ).get({ id: rolloutId })?.updatedAt;
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
      try {
        this.tick(rolloutId, { deadlines: false });
      } catch (error) {
        this.deps.logger.error({ err: error, rolloutId }, 'issuing the next batch of a wave failed');
      }
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
