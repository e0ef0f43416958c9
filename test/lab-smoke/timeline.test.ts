import { describe, expect, it } from 'vitest';
import type { HostEvent } from '../../shared/src/operator-api.js';
import { deploymentTimeline } from '../lab/timeline.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();
let id = 0;
const report = (version: number, phase: string, reportedMs: number, storedMs = reportedMs + 5): HostEvent => ({
  id: ++id,
  host: 'web-1',
  at: iso(storedMs),
  kind: 'report',
  actor: 'agent:web-1',
  data: { phase, manifestVersion: version, reportedAt: iso(reportedMs) },
});

describe('deployment timeline', () => {
  it('splits a deployment into notify, realise, switch, health, commit and report', () => {
    const events = [
      report(1, 'healthy', -500),
      report(2, 'accepted', 40),
      report(2, 'realising', 45),
      report(2, 'activating', 200),
      report(2, 'checking', 230),
      report(2, 'committing', 260),
      report(2, 'healthy', 300, 310),
    ];
    expect(deploymentTimeline(events, { version: 2, issuedAt: iso(0) })).toEqual({
      version: 2,
      outcome: 'healthy',
      totalMs: 310,
      notifyMs: 40,
      realiseMs: 155,
      switchMs: 30,
      healthMs: 30,
      commitMs: 40,
      reportMs: 10,
    });
  });

  it('has no timeline until the version reached a terminal phase, and leaves skipped phases empty', () => {
    const pending = [report(3, 'accepted', 10), report(3, 'realising', 20)];
    expect(deploymentTimeline(pending, { version: 3, issuedAt: iso(0) })).toBeNull();
    const rolledBack = [...pending, report(3, 'activating', 50), report(3, 'rolling-back', 80), report(3, 'rolled-back', 120)];
    expect(deploymentTimeline(rolledBack, { version: 3, issuedAt: iso(0) })).toMatchObject({
      outcome: 'rolled-back',
      switchMs: null,
      healthMs: null,
      commitMs: null,
    });
  });
});
