import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_HEALTH_CHECK } from '../lab/agent-config.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { GATE_CHECK, nextSeq, outboxReports, phasesOf, reportEvents, systemOf } from './deploy-helpers.js';

/** Whether an agent log line says it dropped manifest `version` as one it already handled. */
function logsAlreadyHandled(line: string, version: number): boolean {
  try {
    const entry = JSON.parse(line) as { msg?: unknown; version?: unknown };
    return entry.msg === 'manifest already handled' && entry.version === version;
  } catch {
    return false;
  }
}

describe('deployments that outlive a controller outage or an agent crash', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let outageHost: LabHost;
  let crashHost: LabHost;
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController();
    [outageHost, crashHost] = await Promise.all([
      lab.addHost('outage-1', { bootstrap: fixtures.systems.base }),
      lab.addHost('crash-1', { bootstrap: fixtures.systems.base }),
    ]);
    await Promise.all([
      outageHost.start({ config: { healthChecks: [LAB_HEALTH_CHECK, GATE_CHECK], healthDeadlineMs: 30_000 } }),
      // A switch may take long: the hanging one is still running when the agent is killed.
      crashHost.start({ config: { timeouts: { switchMs: 60_000 } } }),
    ]);
    for (const name of ['outage-1', 'crash-1']) {
      await controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context);
    }
  });
  afterAll(() => lab?.cleanup());

  it('keeps the reports made while the controller is down, across an agent restart, and delivers each once when it is back', async () => {
    const v2 = fixtures.systems.v2.path;
    const manifest = await controller.client.setDesired('outage-1', v2);
    // The controller acknowledged 'checking' (the gate's reachability proof); the gate itself is still closed.
    await controller.waitForHost('outage-1', 'in its health gate', (s) => s.reportedVersion === manifest.version && s.phase === 'checking', 30_000, context);

    await controller.kill();
    writeFileSync(join(outageHost.paths.run, 'lab', 'release-gate'), '');

    // The deployment finishes without the controller; its last reports wait on disk.
    await outageHost.waitFor('activation finished while the controller is down', () => {
      const state = outageHost.agentState() as { lastResult?: { manifestVersion: number; phase: string } } | null;
      return state?.lastResult?.manifestVersion === manifest.version && state.lastResult.phase === 'healthy';
    });
    expect(systemOf(outageHost)).toEqual({ current: v2, profile: v2, bootDefault: v2 });
    await outageHost.waitFor('the healthy report in the outbox', () => outboxReports(outageHost).some((r) => r.phase === 'healthy'));
    const waiting = outboxReports(outageHost).filter((r) => r.manifestVersion === manifest.version).map((r) => r.phase);
    expect(waiting).toEqual(expect.arrayContaining(['committing', 'healthy']));

    // The agent dies too, and comes back while the controller is still down: the outbox is on
    // disk, and the report it makes at start ('reconciled') must not reuse a pending seq.
    await outageHost.kill();
    const pendingSeqs = outboxReports(outageHost).map((r) => r.seq);
    await outageHost.start();
    await outageHost.waitFor('a reconciled report in the outbox', () => outboxReports(outageHost).some((r) => r.phase === 'reconciled'));
    const reconciled = outboxReports(outageHost).find((r) => r.phase === 'reconciled')!;
    expect(reconciled.seq).toBe(Math.max(...pendingSeqs) + 1);
    expect(reconciled.detail.reason).toMatch(/running the system of the last accepted manifest/);

    const restartedAt = Date.now();
    await controller.start();
    // Its newest report, the restarted agent's 'reconciled', is what the status shows in the end.
    const status = await controller.waitForHost(
      'outage-1',
      'the reports from the outage stored',
      (s) => s.reportedVersion === manifest.version && s.phase === 'reconciled',
      60_000,
      context,
    );
    expect(status).toMatchObject({ currentSystem: v2, lastError: null });
    await outageHost.waitFor('an empty outbox', () => outboxReports(outageHost).length === 0);

    const events = await controller.client.events('outage-1');
    const reports = reportEvents(events);
    // Every report the agent ever numbered is stored, exactly once, none missing.
    const seqs = reports.map((r) => r.seq);
    const made = nextSeq(outageHost) - 1;
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: made }, (_, i) => i + 1));
    expect(phasesOf(events, manifest.version)).toEqual(['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy', 'reconciled']);
    const delivered = reports.filter((r) => pendingSeqs.includes(r.seq) || r.seq === reconciled.seq);
    expect(delivered.map((r) => r.phase)).toEqual([...waiting, 'reconciled']);
    for (const report of delivered) expect(report.storedAt).toBeGreaterThanOrEqual(restartedAt);
  });

  it('reconciles after being killed with SIGKILL mid-switch: the host ends rolled back, never half-way', async () => {
    const base = fixtures.systems.base.path;
    const hanging = fixtures.systems.hangSwitch.path;
    const manifest = await controller.client.setDesired('crash-1', hanging);
    await crashHost.waitFor('the switch running', () => {
      const state = crashHost.agentState() as { activation?: { step: string } | null } | null;
      return state?.activation?.step === 'activating' && crashHost.activations().some((a) => a.action === 'test' && a.path === hanging);
    });

    await crashHost.kill();
    // Half-way: the new system runs, but it is neither the profile nor the boot default.
    expect(systemOf(crashHost)).toEqual({ current: hanging, profile: base, bootDefault: base });
    const activationsBefore = crashHost.activations().length;

    await crashHost.start();
    const status = await controller.waitForPhase('crash-1', manifest.version, 'rolled-back', 30_000, context);

    expect(systemOf(crashHost)).toEqual({ current: base, profile: base, bootDefault: base });
    expect(status).toMatchObject({ currentSystem: base, lastError: 'agent restarted mid-activation' });
    const reports = reportEvents(await controller.client.events('crash-1')).filter((r) => r.manifestVersion === manifest.version);
    expect(reports.at(-1)).toMatchObject({ phase: 'rolled-back', currentSystem: base, detail: { reason: 'agent restarted mid-activation', previousSystem: base } });
    expect(crashHost.agentState()).toMatchObject({
      highestVersion: manifest.version,
      activation: null,
      lastResult: { manifestVersion: manifest.version, phase: 'rolled-back' },
    });
    // The previous system was re-activated; the hanging one was not started again, also not
    // when the controller re-sent the same manifest on reconnect.
    await controller.waitForHost('crash-1', 'reconnected', (s) => s.connection === 'websocket', 30_000, context);
    // The agent has the re-sent manifest in hand and let it be: only from here would a second start of it have shown.
    await crashHost.agent!.waitForLine((line) => logsAlreadyHandled(line, manifest.version), 30_000, `"manifest already handled" for version ${manifest.version}`);
    expect(crashHost.activations().slice(activationsBefore).map((a) => [a.action, a.path])).toEqual([
      ['switch', base],
      ['boot', base],
    ]);
    expect(existsSync(join(crashHost.paths.state, 'state.json'))).toBe(true);
  });
});
