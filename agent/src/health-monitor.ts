import type { Logger } from '../../shared/src/logger.js';
import type { HealthCheck } from './config.js';
import { runCheck, type CheckResult } from './health.js';
import type { Reporter } from './reporter.js';
import type { LastResult, StateStore } from './state.js';

/**
 * After a healthy activation the agent keeps running its health checks on an interval, so that a
 * rollout's bake watches the hosts it baked and operators see a host that turned unhealthy. Only
 * transitions are reported, under the manifest the host last applied: `degraded` when a check
 * starts failing, `recovered` when all pass again. Nothing is rolled back: the system passed its
 * gate, and whether to move the fleet is the rollout's (or the operator's) call.
 */

export interface HealthMonitorDeps {
  checks: readonly HealthCheck[];
  intervalMs: number;
  state: Pick<StateStore, 'get'>;
  currentSystem: () => Promise<string | null>;
  /** True while a manifest is being handled: its own gate judges the system then. */
  busy: () => boolean;
  report: Reporter;
  logger: Logger;
}

type Verdict = { kind: 'healthy' } | { kind: 'degraded'; reason: string };

export class HealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private running: Promise<void> | null = null;
  /** The result being watched (its `at` tells one activation from the next) and what was last said about it. */
  private watching: { at: string; verdict: Verdict } | null = null;

  constructor(private readonly deps: HealthMonitorDeps) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One round now (tests, and the timer). */
  async checkNow(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.round().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.checkNow()
        .catch((error: unknown) => this.deps.logger.error({ err: error }, 'health monitor round failed'))
        .finally(() => {
          if (!this.stopped) this.schedule();
        });
    }, this.deps.intervalMs);
  }

  private async round(): Promise<void> {
    if (this.deps.busy()) return;
    const last = this.deps.state.get().lastResult;
    if (!last || last.phase !== 'healthy') {
      this.watching = null;
      return;
    }
    // Something else runs now (changed by hand, or an activation we have not heard the end of): not ours to judge.
    if ((await this.deps.currentSystem()) !== last.storePath) return;
    // A new result was just proved healthy by its gate (or renewed while healthy): start from there.
    if (this.watching?.at !== last.at) this.watching = { at: last.at, verdict: { kind: 'healthy' } };

    const failed = await this.firstFailure();
    // The state may have moved on while the checks ran; this round's answer is about a result gone.
    if (this.deps.busy() || this.deps.state.get().lastResult?.at !== last.at) return;
    const before = this.watching.verdict;
    if (failed && before.kind === 'healthy') {
      this.watching.verdict = { kind: 'degraded', reason: failed.reason };
      this.deps.logger.warn({ version: last.manifestVersion, reason: failed.reason }, 'health check failing on the running system: degraded');
      await this.send(last, 'degraded', failed);
    } else if (!failed && before.kind === 'degraded') {
      this.watching.verdict = { kind: 'healthy' };
      this.deps.logger.info({ version: last.manifestVersion }, 'health checks pass again: recovered');
      await this.send(last, 'recovered', null);
    }
  }

  private async firstFailure(): Promise<Extract<CheckResult, { ok: false }> | null> {
    for (const check of this.deps.checks) {
      const result = await runCheck(check);
      if (!result.ok) return result;
    }
    return null;
  }

  private async send(last: LastResult, phase: 'degraded' | 'recovered', failed: Extract<CheckResult, { ok: false }> | null): Promise<void> {
    await this.deps.report({
      phase,
      manifestVersion: last.manifestVersion,
      storePath: last.storePath,
      detail: failed ? { reason: failed.reason.slice(0, 4096), failure: failed.failure } : { reason: 'health checks pass again' },
    });
  }
}
