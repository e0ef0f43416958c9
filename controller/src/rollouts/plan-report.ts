import { eq } from 'drizzle-orm';
import { waveNumber, type RolloutPlan, type RolloutPlanReport, type RolloutSpec } from '../../../shared/src/rollout-api.js';
import type { ControllerDeps } from '../deps.js';
import type { EngineOutcome, RolloutEngine } from './engine.js';
import type { PreflightTarget } from './preflight.js';
import { predictReboots } from './reboot-prediction.js';
import { releaseInsight } from './release-insight.js';
import { readRelease } from './releases.js';

/** The hosts of a plan with the systems the release gives them. */
export async function planTargets(deps: Pick<ControllerDeps, 'store'>, spec: RolloutSpec, names: readonly string[]): Promise<PreflightTarget[]> {
  const paths = new Map((await readRelease(deps.store, spec.release))!.hosts.map((h) => [h.host, h.storePath]));
  return names.map((host) => ({ host, storePath: paths.get(host)! }));
}

/**
 * The plan's paused hosts, in plan order: the engine issues them nothing while paused (they wait,
 * pending, in their wave; rollouts/members.ts), which an operator should know before starting.
 */
async function pausedTargets(deps: Pick<ControllerDeps, 'store'>, plan: RolloutPlan): Promise<RolloutPlanReport['paused']> {
  const { hosts } = deps.store.t;
  // Few hosts are ever paused: one small query rather than one per planned host.
  const paused = new Set((await deps.store.q.select({ name: hosts.name }).from(hosts).where(eq(hosts.paused, true))).map((row) => row.name));
  return plan.waves.flatMap((wave) => wave.hosts.filter((host) => paused.has(host)).map((host) => ({ host, wave: waveNumber(wave.index) })));
}

/** POST /v1/rollouts/plan: what starting `spec` would do, without doing it. */
export async function planReport(deps: ControllerDeps, engine: RolloutEngine, spec: RolloutSpec): Promise<EngineOutcome<RolloutPlanReport>> {
  const planned = await engine.plan(spec);
  if (!planned.ok) return planned;
  const plan = planned.value;
  const names = plan.waves.flatMap((w) => w.hosts);
  const insight = await releaseInsight(deps, await planTargets(deps, spec, names));
  return { ok: true, value: { ...plan, ...insight, reboots: await predictReboots(deps.store, plan.release, names), paused: await pausedTargets(deps, plan) } };
}
