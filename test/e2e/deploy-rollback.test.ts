import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { commandLine, descendants, reportEvents, systemOf } from './deploy-helpers.js';

const HEALTH_DEADLINE_MS = 2_000;
const SWITCH_TIMEOUT_MS = 3_000;

describe('a deployment that fails leaves the host on its previous system and says why', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const hosts: Record<string, LabHost> = {};
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController();
    const configs = {
      'fail-1': {},
      'early-1': {},
      'health-1': { healthDeadlineMs: HEALTH_DEADLINE_MS },
      'hang-1': { timeouts: { switchMs: SWITCH_TIMEOUT_MS } },
    };
    await Promise.all(
      Object.entries(configs).map(async ([name, config]) => {
        hosts[name] = await lab.addHost(name, { bootstrap: fixtures.systems.base });
        await hosts[name].start({ config });
      }),
    );
    for (const name of Object.keys(configs)) {
      await controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context);
    }
  });
  afterAll(() => lab?.cleanup());

  /** Deploys `path` to `name` and returns the final report, which must be rolled-back. */
  async function deployExpectingRollback(name: string, path: string) {
    const manifest = await controller.client.setDesired(name, path);
    const status = await controller.waitForPhase(name, manifest.version, 'rolled-back', 30_000, context);
    const reports = reportEvents(await controller.client.events(name)).filter((r) => r.manifestVersion === manifest.version);
    const final = reports.at(-1)!;
    expect(final.phase).toBe('rolled-back');
    return { manifest, status, reports, final };
  }

  function expectBackOnBase(host: LabHost, failed: string): void {
    const base = fixtures.systems.base.path;
    expect(systemOf(host)).toEqual({ current: base, profile: base, bootDefault: base });
    // The failed system never became a profile generation.
    expect(host.generations().map((g) => g.path)).not.toContain(failed);
  }

  it('rolls back a switch that fails, reporting the failing command, its exit status and its last lines', async () => {
    const host = hosts['fail-1']!;
    const failing = fixtures.systems.failSwitch.path;
    const { status, reports, final } = await deployExpectingRollback('fail-1', failing);

    expectBackOnBase(host, failing);
    expect(reports.map((r) => r.phase)).toEqual(['accepted', 'realising', 'activating', 'rolling-back', 'rolled-back']);
    expect(final.detail.reason).toBe('switch-to-configuration test failed (exit status 1)');
    expect(final.detail.failure).toMatchObject({ command: `${failing}/bin/switch-to-configuration test`, exitCode: 1, signal: null, timedOut: false });
    expect(final.detail.failure!.outputTail).toContain('Job for lab-app.service failed');
    expect(final.detail.failure!.outputTail).toContain('warning: the following units failed: lab-app.service');
    expect(final.detail.previousSystem).toBe(fixtures.systems.base.path);
    expect(final.currentSystem).toBe(fixtures.systems.base.path);
    expect(status).toMatchObject({ phase: 'rolled-back', currentSystem: fixtures.systems.base.path, lastError: final.detail.reason });
    // It had activated (as a failed unit leaves it); the previous system was re-activated with `switch`.
    expect(host.activations().slice(-3).map((a) => [a.action, a.path])).toEqual([
      ['test', failing],
      ['switch', fixtures.systems.base.path],
      ['boot', fixtures.systems.base.path],
    ]);
  });

  it('rolls back a switch that fails before changing anything, and says so', async () => {
    const host = hosts['early-1']!;
    const failing = fixtures.systems.failSwitchEarly.path;
    const { final } = await deployExpectingRollback('early-1', failing);

    expectBackOnBase(host, failing);
    expect(final.detail.failure).toMatchObject({ exitCode: 1, timedOut: false });
    expect(final.detail.failure!.outputTail).toContain('/etc/lab-app.conf is not readable');
  });

  it('rolls back a system whose health check keeps failing until the health deadline', async () => {
    const host = hosts['health-1']!;
    const unhealthy = fixtures.systems.failHealth.path;
    const { reports, final } = await deployExpectingRollback('health-1', unhealthy);

    expectBackOnBase(host, unhealthy);
    expect(reports.map((r) => r.phase)).toEqual(['accepted', 'realising', 'activating', 'checking', 'rolling-back', 'rolled-back']);
    expect(final.detail.reason).toBe(
      `health gate: health check lab-health failed (still failing at the ${HEALTH_DEADLINE_MS} ms health deadline)`,
    );
    expect(final.detail.failure).toMatchObject({ exitCode: 1, timedOut: false });
    expect(final.detail.failure!.outputTail).toContain('etc/health says: bad');
    // The gate kept retrying until its deadline, neither giving up at the first failure nor early.
    const checking = reports.find((r) => r.phase === 'checking')!;
    const rollingBack = reports.find((r) => r.phase === 'rolling-back')!;
    expect(rollingBack.reportedAt - checking.reportedAt).toBeGreaterThanOrEqual(HEALTH_DEADLINE_MS - 50);
    // The boot default was never touched: safe-switch commits only after the gate.
    expect(host.activations().filter((a) => a.path === unhealthy).map((a) => a.action)).toEqual(['test']);
  });

  it('kills a hanging switch at its deadline and rolls back', async () => {
    const host = hosts['hang-1']!;
    const hanging = fixtures.systems.hangSwitch.path;
    const { reports, final } = await deployExpectingRollback('hang-1', hanging);

    expectBackOnBase(host, hanging);
    expect(final.detail.reason).toBe('switch-to-configuration test failed (timed out)');
    expect(final.detail.failure).toMatchObject({ command: `${hanging}/bin/switch-to-configuration test`, timedOut: true, exitCode: null, signal: 'SIGTERM' });
    expect(final.detail.failure!.outputTail).toContain('starting the following units: lab-app.service');
    const activating = reports.find((r) => r.phase === 'activating')!;
    const rollingBack = reports.find((r) => r.phase === 'rolling-back')!;
    // Not before its deadline; that the deadline ended it (and not the switch itself) is timedOut above, not a stopwatch.
    expect(rollingBack.reportedAt - activating.reportedAt).toBeGreaterThanOrEqual(SWITCH_TIMEOUT_MS);
    // Nothing of the hung switch is left running inside the host.
    // By program, not by substring: a checkout path may contain "sleep" too.
    const leftovers = descendants(host.agent!.pid).map(commandLine).filter((cmd) => /^(\S*\/)?sleep(\s|$)/.test(cmd));
    expect(leftovers).toEqual([]);
  });
});
