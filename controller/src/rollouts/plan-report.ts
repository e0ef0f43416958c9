import { eq } from 'drizzle-orm';
import { waveNumber, type RolloutPlan, type RolloutPlanReport, type RolloutSpec } from '../../../shared/src/rollout-api.js';
import type { ControllerDeps } from '../deps.js';
import { hosts } from '../db/schema.js';
import type { EngineOutcome, RolloutEngine } from './engine.js';
import type { PreflightTarget } from './preflight.js';
import { predictReboots } from './reboot-prediction.js';
import { releaseInsight } from './release-insight.js';
import { readRelease } from './releases.js';

/** The hosts of a plan with the systems the release gives them. */
export function planTargets(deps: Pick<ControllerDeps, 'db'>, spec: RolloutSpec, names: readonly string[]): PreflightTarget[] {
  const paths = new Map(readRelease(deps.db, spec.release)!.hosts.map((h) => [h.host, h.storePath]));
  return names.map((host) => ({ host, storePath: paths.get(host)! }));
}

/**
 * The plan's paused hosts, in plan order: the engine issues them nothing while paused (they wait,
 * pending, in their wave; rollouts/members.ts), which an operator should know before starting.
 */
function pausedTargets(deps: Pick<ControllerDeps, 'db'>, plan: RolloutPlan): RolloutPlanReport['paused'] {
  // Few hosts are ever paused: one small query rather than one per planned host.
  const paused = new Set(deps.db.select({ name: hosts.name }).from(hosts).where(eq(hosts.paused, true)).all().map((row) => row.name));
  return plan.waves.flatMap((wave) => wave.hosts.filter((host) => paused.has(host)).map((host) => ({ host, wave: waveNumber(wave.index) })));
}

/** POST /v1/rollouts/plan: what starting `spec` would do, without doing it. */
export async function planReport(deps: ControllerDeps, engine: RolloutEngine, spec: RolloutSpec): Promise<EngineOutcome<RolloutPlanReport>> {
  const planned = await engine.plan(spec);
  if (!planned.ok) return planned;
  const plan = planned.value;
  const names = plan.waves.flatMap((w) => w.hosts);
  const insight = await releaseInsight(deps, planTargets(deps, spec, names));
  return { ok: true, value: { ...plan, ...insight, reboots: predictReboots(deps.db, plan.release, names), paused: pausedTargets(deps, plan) } };
}
