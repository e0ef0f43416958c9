import type { Logger } from '../../../shared/src/logger.js';

/** The shortest spacing between two report-driven passes: 25 ms later is nothing to a rollout. */
export const REPORT_TICK_SPACING_MS = 25;
/** A pass may take at most 1 / this of the time: the rest is the reports' (and the agents'). */
export const REPORT_TICK_COST_FACTOR = 10;

export interface ReportTickTimers {
  now(): number;
  later(run: () => void, delayMs: number): void;
}

const realTimers: ReportTickTimers = {
  now: () => performance.now(),
  later: (run, delayMs) => {
    if (delayMs <= 0) setImmediate(run);
    else setTimeout(run, delayMs);
  },
};

/**
 * Advances each rollout once per pass however many of its hosts reported since the last one (one
 * tick per report made ingest quadratic in the wave size: 1,000 hosts, 154 reports/s). Passes
 * are REPORT_TICK_SPACING_MS apart, or REPORT_TICK_COST_FACTOR times as long as the last pass
 * took when that is longer: a pass counts the wave's members, which on a 10,000-host wave costs
 * milliseconds, and at a fixed spacing those counts took a quarter of the controller's time while
 * the wave reported. These passes react to results only (threshold, end of wave, next hosts);
 * deadlines are the rollout timer's.
 */
export function reportTicks(wake: (rolloutId: string) => Promise<void>, logger: Logger, timers: ReportTickTimers = realTimers): (rolloutId: string) => void {
  const due = new Set<string>();
  let scheduled = false;
  let nextAllowedAt = -Infinity;

  const pass = async (): Promise<void> => {
    const ids = [...due];
    due.clear();
    const startedAt = timers.now();
    await Promise.all(ids.map((id) => wake(id).catch((error: unknown) => logger.error({ err: error, rolloutId: id }, 'rollout tick after reports failed'))));
    const finishedAt = timers.now();
    nextAllowedAt = finishedAt + Math.max(REPORT_TICK_SPACING_MS, REPORT_TICK_COST_FACTOR * (finishedAt - startedAt));
    scheduled = false;
    if (due.size > 0) schedule();
  };

  const schedule = (): void => {
    scheduled = true;
    timers.later(() => void pass(), nextAllowedAt - timers.now());
  };

  return (rolloutId) => {
    due.add(rolloutId);
    if (!scheduled) schedule();
  };
}
