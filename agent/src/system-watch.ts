import type { Logger } from '../../shared/src/logger.js';
import type { Reporter } from './reporter.js';
import type { StateStore } from './state.js';

export interface SystemWatchDeps {
  state: StateStore;
  report: Reporter;
  /** readlink of current-system, as the reports carry it. */
  currentSystem: () => Promise<string | null>;
  /** What the last report said the host runs. */
  lastReported: () => string | null;
  /** True while no manifest is being handled: only then is a change not the agent's own. */
  idle: () => boolean;
  intervalMs: number;
  logger: Logger;
}

/**
 * Notices the running system changing under the agent (a manual `nixos-rebuild switch`, which
 * does not restart it) and reports where the host stands, so the controller can show it as
 * drifted. Looks only while idle: during an activation the change is the agent's own.
 */
export class SystemWatch {
  private timer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(private readonly deps: SystemWatchDeps) {}

  start(): void {
    this.timer ??= setInterval(() => void this.check(), this.deps.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One look; returns whether it reported a change. */
  async check(): Promise<boolean> {
    if (this.checking || !this.deps.idle() || this.deps.state.get().activation) return false;
    this.checking = true;
    try {
      const before = this.deps.lastReported();
      const current = await this.deps.currentSystem();
      if (current === null || current === before) return false;
      // A manifest may have arrived while we read the link.
      if (!this.deps.idle() || this.deps.state.get().activation) return false;
      const { highestVersion, highestStorePath } = this.deps.state.get();
      this.deps.logger.warn({ running: current, before }, 'the running system changed outside Shoal');
      await this.deps.report({
        phase: 'reconciled',
        manifestVersion: highestVersion > 0 ? highestVersion : null,
        storePath: highestStorePath,
        detail: { reason: `running ${current}, switched outside Shoal${before ? ` (was ${before})` : ''}` },
      });
      return true;
    } catch (error) {
      this.deps.logger.error({ err: error }, 'checking the running system failed');
      return false;
    } finally {
      this.checking = false;
    }
  }
}
