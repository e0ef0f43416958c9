import type { RolloutSpec } from '../../../shared/src/rollout-api.js';
import type { ControllerDeps } from '../deps.js';
import type { EngineOutcome, PreflightRecord, Refusal, RolloutEngine } from './engine.js';
import { planTargets } from './plan-report.js';
import { describeProblems } from './preflight.js';
import { releaseInsight } from './release-insight.js';

/*
 * Starting a rollout, or a retry (a new rollout), from any front door: the operator API and the
 * dashboard call these, so neither can issue a manifest the binary cache cannot serve unless the
 * operator said to start anyway.
 */

type Deps = Pick<ControllerDeps, 'store' | 'presence' | 'cache' | 'clock'>;

/**
 * Before the first manifest of a rollout: a path the cache cannot serve would stop hosts mid-wave.
 * Refused unless `skipPreflight`; the record goes into the rollout-started audit event.
 */
async function preflightFor(deps: Deps, engine: RolloutEngine, spec: RolloutSpec, skipPreflight: boolean): Promise<EngineOutcome<PreflightRecord>> {
  const plan = await engine.plan(spec);
  if (!plan.ok) return plan;
  const { preflight } = await releaseInsight(deps, await planTargets(deps, spec, plan.value.waves.flatMap((w) => w.hosts)), { diff: false });
  if (preflight.outcome === 'failed' && !skipPreflight) {
    const problems = describeProblems(preflight.problems);
    const refusal: Refusal = {
      ok: false,
      kind: 'preflight-failed',
      message: `rollout refused: the binary cache cannot serve ${preflight.problems.length} path(s) of the target closures (nothing was issued; --skip-preflight / skipPreflight to start anyway): ${problems.join('; ')}`,
      problems,
    };
    return refusal;
  }
  return {
    ok: true,
    value: { outcome: preflight.outcome, skipped: skipPreflight && preflight.outcome === 'failed', paths: preflight.paths, problems: describeProblems(preflight.problems, 20) },
  };
}

/** Starts a rollout of `spec` once the cache preflight passed (or was skipped). Returns its id. */
export async function startChecked(deps: Deps, engine: RolloutEngine, spec: RolloutSpec, actor: string, skipPreflight: boolean): Promise<EngineOutcome<string>> {
  const preflight = await preflightFor(deps, engine, spec, skipPreflight);
  if (!preflight.ok) return preflight;
  return engine.start(spec, actor, { preflight: preflight.value });
}

/** Retries finished rollout `id` (a new rollout for what it left undone), preflighted like a start. Returns the new id. */
export async function retryChecked(deps: Deps, engine: RolloutEngine, id: string, actor: string, skipPreflight: boolean): Promise<EngineOutcome<string>> {
  const spec = await engine.retrySpec(id);
  if (!spec.ok) return spec;
  const preflight = await preflightFor(deps, engine, spec.value, skipPreflight);
  if (!preflight.ok) return preflight;
  return engine.retry(id, actor, preflight.value);
}
