import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../shared/src/logger.js';
import { REPORT_TICK_COST_FACTOR, REPORT_TICK_SPACING_MS, reportTicks, type ReportTickTimers } from '../../../controller/src/rollouts/report-ticks.js';

/** Timers under the test's hand: a pass runs when the test fires it, and its cost is what the test says it took. */
function manualTimers() {
  let now = 1_000;
  const pending: Array<{ run: () => void; delayMs: number }> = [];
  const timers: ReportTickTimers = { now: () => now, later: (run, delayMs) => void pending.push({ run, delayMs }) };
  return {
    timers,
    pending,
    advance: (ms: number) => void (now += ms),
    async fire() {
      const next = pending.shift()!;
      next.run();
      // The pass awaits its wakes; let them settle.
      for (let i = 0; i < 5; i++) await Promise.resolve();
      return next.delayMs;
    },
  };
}

describe('report-driven rollout ticks', () => {
  it('wakes each rollout once per pass, however many of its hosts reported', async () => {
    const clock = manualTimers();
    const woken: string[] = [];
    const schedule = reportTicks(async (id) => void woken.push(id), silentLogger(), clock.timers);
    schedule('r1');
    schedule('r1');
    schedule('r2');
    schedule('r1');
    expect(clock.pending).toHaveLength(1);
    await clock.fire();
    expect(woken.sort()).toEqual(['r1', 'r2']);
  });

  it('spaces passes by ten times what the last one cost when that is more than the minimum', async () => {
    const clock = manualTimers();
    const schedule = reportTicks(async () => clock.advance(40), silentLogger(), clock.timers);
    schedule('r1');
    expect(await clock.fire()).toBeLessThanOrEqual(0);
    // A report arriving while the pass is spaced out is not lost: it waits for the next pass.
    schedule('r1');
    expect(clock.pending).toHaveLength(1);
    expect(clock.pending[0]!.delayMs).toBe(40 * REPORT_TICK_COST_FACTOR);
  });

  it('keeps the minimum spacing after a cheap pass', async () => {
    const clock = manualTimers();
    const schedule = reportTicks(async () => clock.advance(1), silentLogger(), clock.timers);
    schedule('r1');
    await clock.fire();
    schedule('r1');
    expect(clock.pending[0]!.delayMs).toBe(REPORT_TICK_SPACING_MS);
  });

  it('reports that arrive during a pass get a pass of their own after it', async () => {
    const clock = manualTimers();
    const woken: string[] = [];
    let schedule: (id: string) => void = () => {};
    schedule = reportTicks(
      async (id) => {
        woken.push(id);
        if (id === 'r1') schedule('r2');
      },
      silentLogger(),
      clock.timers,
    );
    schedule('r1');
    await clock.fire();
    expect(clock.pending).toHaveLength(1);
    await clock.fire();
    expect(woken).toEqual(['r1', 'r2']);
  });

  it('a failing wake is logged and does not stop the next pass', async () => {
    const clock = manualTimers();
    const woken: string[] = [];
    const schedule = reportTicks(
      async (id) => {
        if (id === 'bad') throw new Error('tick failed');
        woken.push(id);
      },
      silentLogger(),
      clock.timers,
    );
    schedule('bad');
    await clock.fire();
    schedule('good');
    await clock.fire();
    expect(woken).toEqual(['good']);
  });
});
