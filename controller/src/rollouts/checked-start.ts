import type { RolloutSpec } from '../../../shared/src/rollout-api.js';
import type { ControllerDeps } from '../deps.js';
import { ClosureCache } from '../cache/closure.js';
import type { EngineOutcome, PreflightCheck, Refusal, RolloutEngine } from './engine.js';
import { describeProblems, runPreflight } from './preflight.js';

/*
 * Starting a rollout, or a retry (a new rollout), from any front door: the operator API and the
 * dashboard call these, so neither can issue a manifest the binary cache cannot serve unless the
 * operator said to start anyway.
 */

type Deps = Pick<ControllerDeps, 'cache' | 'clock'>;

/**
 * Before the first manifest of a rollout: a path the cache cannot serve would stop hosts mid-wave.
 * Refused unless `skipPreflight`; the record goes into the rollout-started audit event. Run by the
 * engine on the plan it starts (a 10,000-host plan made once per request, not once here and again
 * there); only the cache is read, not what the hosts run, which a start does not need.
 */
function preflightCheck(deps: Deps, skipPreflight: boolean): PreflightCheck {
  return async (targets) => {
    const preflight = await runPreflight(deps.cache, new ClosureCache(deps.cache), targets, () => deps.clock.now());
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
  };
}

/** Starts a rollout of `spec` once the cache preflight passed (or was skipped). Returns its id. */
export async function startChecked(deps: Deps, engine: RolloutEngine, spec: RolloutSpec, actor: string, skipPreflight: boolean): Promise<EngineOutcome<string>> {
  return engine.start(spec, actor, { preflight: preflightCheck(deps, skipPreflight) });
}

/** Retries finished rollout `id` (a new rollout for what it left undone), preflighted like a start. Returns the new id. */
export async function retryChecked(deps: Deps, engine: RolloutEngine, id: string, actor: string, skipPreflight: boolean): Promise<EngineOutcome<string>> {
  return engine.retry(id, actor, preflightCheck(deps, skipPreflight));
}
