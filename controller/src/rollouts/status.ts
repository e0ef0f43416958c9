import { and, asc, desc, eq, gt, type SQL } from 'drizzle-orm';
import type { HostEvent } from '../../../shared/src/operator-api.js';
import type {
  RolloutHostState,
  RolloutHostView,
  RolloutList,
  RolloutPlan,
  RolloutSpec,
  RolloutState,
  RolloutStatus,
  WaveCounts,
} from '../../../shared/src/rollout-api.js';
import { waveNumber } from '../../../shared/src/rollout-api.js';
import { iso, isoOrNull } from '../clock.js';
import type { RolloutHostRow, RolloutRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { rolloutFailures, type FailureReport } from '../reports/latest-failure.js';

function counts(members: RolloutHostRow[]): WaveCounts {
  const of = (state: RolloutHostState) => members.filter((m) => m.state === state).length;
  return {
    pending: of('pending'),
    inProgress: of('issued') + of('in-progress'),
    healthy: of('healthy'),
    failed: of('failed'),
    skipped: of('skipped'),
  };
}

function hostView(member: RolloutHostRow, paused: ReadonlySet<string>, failures: ReadonlyMap<string, FailureReport>): RolloutHostView {
  return {
    host: member.host,
    state: member.state,
    targetPath: member.targetPath,
    previousSystem: member.previousSystem,
    manifestVersion: member.manifestVersion,
    reason: member.reason,
    rollbackState: member.rollbackState,
    failure: member.state === 'failed' ? (failures.get(member.host) ?? null) : null,
    paused: paused.has(member.host),
  };
}

function bakeRemaining(row: RolloutRow, spec: RolloutSpec, now: number): number | null {
  if (row.wavePhase !== 'baking' || row.bakeStartedAt === null) return null;
  // A paused rollout's bake clock stands still.
  const elapsed = (row.pausedAt ?? now) - row.bakeStartedAt;
  return Math.max(0, Math.ceil((spec.bakeSeconds * 1000 - elapsed) / 1000));
}

export async function rolloutStatus(store: Store, id: string, now: number): Promise<RolloutStatus | null> {
  const { hosts, rolloutHosts, rollouts } = store.t;
  const [row] = await store.q.select().from(rollouts).where(eq(rollouts.id, id)).limit(1);
  if (!row) return null;
  const spec = row.spec as RolloutSpec;
  const plan = row.plan as RolloutPlan;
  const members = await store.q.select().from(rolloutHosts).where(eq(rolloutHosts.rolloutId, id)).orderBy(asc(rolloutHosts.position));
  // Few hosts are ever paused: one small query rather than a join per member.
  const paused = new Set((await store.q.select({ name: hosts.name }).from(hosts).where(eq(hosts.paused, true))).map((row) => row.name));
  const failed = members.filter((m) => m.state === 'failed' && m.manifestVersion !== null).map((m) => ({ host: m.host, version: m.manifestVersion! }));
  const failures = await rolloutFailures(store, id, failed);
  return {
    id: row.id,
    release: row.release,
    state: row.state,
    reason: row.reason,
    waveIndex: row.waveIndex,
    wave: waveNumber(row.waveIndex),
    wavePhase: row.wavePhase,
    bakeRemainingSeconds: bakeRemaining(row, spec, now),
    failureThreshold: spec.failureThreshold,
    failures: members.filter((m) => m.state === 'failed').length,
    finished: members.filter((m) => m.state === 'healthy' || m.state === 'failed').length,
    createdAt: iso(row.createdAt),
    createdBy: row.createdBy,
    finishedAt: isoOrNull(row.finishedAt),
    retryOf: row.retryOf,
    spec,
    waves: plan.waves.map((wave) => {
      const inWave = members.filter((m) => m.wave === wave.index);
      return {
        index: wave.index,
        number: waveNumber(wave.index),
        canary: wave.canary,
        needsApproval: wave.needsApproval,
        approved: !wave.needsApproval || row.approvedThrough >= wave.index,
        counts: counts(inWave),
        hosts: inWave.map((member) => hostView(member, paused, failures)),
      };
    }),
  };
}

export async function listRollouts(store: Store, limit = 50): Promise<RolloutList['rollouts']> {
  const { rollouts } = store.t;
  const rows = await store.q.select().from(rollouts).orderBy(desc(rollouts.createdAt)).limit(limit);
  return rows.map((row) => {
    const plan = row.plan as RolloutPlan;
    return {
      id: row.id,
      release: row.release,
      state: row.state,
      reason: row.reason,
      waveIndex: row.waveIndex,
      wave: waveNumber(row.waveIndex),
      createdAt: iso(row.createdAt),
      finishedAt: isoOrNull(row.finishedAt),
      retryOf: row.retryOf,
      waves: plan.waves.length,
      hosts: plan.waves.reduce((sum, wave) => sum + wave.hosts.length, 0),
    };
  });
}

/** The rollout's audit log: every transition and every host result, in order. */
export async function rolloutEvents(store: Store, id: string, afterId = 0, limit = 1000): Promise<HostEvent[]> {
  return rolloutEventsAmong(store, id, gt(store.t.events.id, afterId), limit);
}

/** The rollout's events among those `ids` selects (a condition on events.id: events-cursor.ts), in id order. */
export async function rolloutEventsAmong(store: Store, id: string, ids: SQL, limit: number): Promise<HostEvent[]> {
  const { events } = store.t;
  const rows = await store.q
    .select()
    .from(events)
    .where(and(eq(events.rolloutId, id), ids))
    .orderBy(asc(events.id))
    .limit(limit);
  return rows.map((row) => ({
      id: row.id,
      host: row.host,
      rolloutId: row.rolloutId,
      at: iso(row.at),
      kind: row.kind as HostEvent['kind'],
      actor: row.actor,
      data: row.data,
    }));
}
