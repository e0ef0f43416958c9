import type { Histogram } from 'prom-client';
import { DEPLOYMENT_SUCCESS_PHASES, HEALTH_TRANSITION_PHASES, TERMINAL_PHASES } from '../../../shared/src/phases.js';
import type { Phase } from '../../../shared/src/protocol.js';

interface InFlight {
  version: number;
  startedAt: number;
  phase: Phase;
  phaseAt: number;
}

/**
 * Times deployments from the reports' own timestamps (the agent's clock, consistent for one host):
 * a deployment runs from the first report about a manifest version (normally `accepted`) to that
 * version's terminal phase; each phase lasts until the next report of the same version.
 * A deployment in flight when the controller restarts is not timed.
 */
export class DeploymentTimer {
  private readonly inFlight = new Map<string, InFlight>();

  constructor(
    private readonly deployment: Histogram<'result'>,
    private readonly phases: Histogram<'phase'>,
  ) {}

  report(host: string, version: number | null, phase: Phase, at: number): void {
    // A running system turning degraded (or recovering) is not a deployment.
    if (HEALTH_TRANSITION_PHASES.has(phase)) return;
    if (version === null || !Number.isFinite(at)) {
      this.inFlight.delete(host);
      return;
    }
    const terminal = TERMINAL_PHASES.has(phase);
    const current = this.inFlight.get(host);
    if (!current || current.version !== version) {
      // A deployment first seen in its terminal phase has no start to measure from.
      if (terminal) this.inFlight.delete(host);
      else this.inFlight.set(host, { version, startedAt: at, phase, phaseAt: at });
      return;
    }
    if (phase !== current.phase) {
      this.phases.observe({ phase: current.phase }, Math.max(0, at - current.phaseAt) / 1000);
      current.phase = phase;
      current.phaseAt = at;
    }
    if (terminal) {
      this.deployment.observe({ result: DEPLOYMENT_SUCCESS_PHASES.has(phase) ? 'success' : 'failure' }, Math.max(0, at - current.startedAt) / 1000);
      this.inFlight.delete(host);
    }
  }
}
