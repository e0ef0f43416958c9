import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HealthMonitor } from '../../agent/src/health-monitor.js';
import type { ReportInput } from '../../agent/src/reporter.js';
import { INITIAL_STATE, type AgentState, type LastResult } from '../../agent/src/state.js';
import type { Report } from '../../shared/src/protocol.js';
import { silentLogger } from '../../shared/src/logger.js';
import { useTmpDirs } from './tmp-dir.js';

const SYSTEM = '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-web-1';

describe('health monitor (real check commands)', () => {
  const tmpDir = useTmpDirs();

  async function monitored(options: { last?: LastResult | null; current?: string; busy?: boolean } = {}) {
    const dir = await tmpDir();
    const broken = join(dir, 'broken');
    const state: AgentState = {
      ...INITIAL_STATE,
      lastResult: options.last === undefined ? { manifestVersion: 4, storePath: SYSTEM, phase: 'healthy', at: '2026-01-01T00:00:00.000Z' } : options.last,
    };
    const sent: ReportInput[] = [];
    let busy = options.busy ?? false;
    const monitor = new HealthMonitor({
      // The check fails while the file `broken` exists, as a service whose health endpoint stops answering.
      checks: [{ kind: 'command', name: 'web', command: ['/bin/sh', '-c', `test ! -e ${broken}`], timeoutMs: 5_000 }],
      intervalMs: 60_000,
      state: { get: () => state },
      currentSystem: async () => options.current ?? SYSTEM,
      busy: () => busy,
      report: async (input) => {
        sent.push(input);
        return { seq: sent.length } as Report;
      },
      logger: silentLogger(),
    });
    return {
      monitor,
      state,
      sent,
      phases: () => sent.map((r) => r.phase),
      breakIt: () => writeFile(broken, ''),
      fixIt: () => rm(broken),
      setBusy: (value: boolean) => {
        busy = value;
      },
    };
  }

  it('reports degraded when a check starts failing on the healthy system, and recovered when it passes again, once each', async () => {
    const m = await monitored();
    await m.monitor.checkNow();
    expect(m.sent).toEqual([]);
    await m.breakIt();
    await m.monitor.checkNow();
    await m.monitor.checkNow();
    expect(m.phases()).toEqual(['degraded']);
    expect(m.sent[0]).toMatchObject({ manifestVersion: 4, storePath: SYSTEM, detail: { reason: 'health check web failed' } });
    expect(m.sent[0]!.detail!.failure!.command).toContain('test ! -e');
    await m.fixIt();
    await m.monitor.checkNow();
    await m.monitor.checkNow();
    expect(m.phases()).toEqual(['degraded', 'recovered']);
  });

  it('says it again under a new result (a renewal) that finds the system still failing', async () => {
    const m = await monitored();
    await m.breakIt();
    await m.monitor.checkNow();
    m.state.lastResult = { ...m.state.lastResult!, manifestVersion: 5, at: '2026-01-02T00:00:00.000Z' };
    await m.monitor.checkNow();
    expect(m.sent.map((r) => [r.phase, r.manifestVersion])).toEqual([
      ['degraded', 4],
      ['degraded', 5],
    ]);
  });

  it('leaves alone a host that is handling a manifest, did not end healthy, or runs another system', async () => {
    for (const options of [{ busy: true }, { last: null }, { last: { manifestVersion: 4, storePath: SYSTEM, phase: 'rolled-back' as const, at: '2026-01-01T00:00:00.000Z' } }, { current: `${SYSTEM}-other` }]) {
      const m = await monitored(options);
      await m.breakIt();
      await m.monitor.checkNow();
      expect([options, m.sent]).toEqual([options, []]);
    }
  });
});
