import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, type AgentConfig } from '../../agent/src/config.js';
import { startAgent, type RunningAgent } from '../../agent/src/daemon.js';
import { rebootstrap } from '../../agent/src/rebootstrap.js';
import { INITIAL_STATE, STATE_FILE, WATERMARK_FILE } from '../../agent/src/state.js';
import { resolveSystem } from '../../agent/src/system.js';
import { silentLogger } from '../../shared/src/logger.js';
import { bootInto, buildSystem, fakeHost, type FakeHost } from './activation-fixture.js';
import { FakeController } from './fake-controller.js';
import { CONTROLLER_KEY, signedManifest, TRUST } from './manifests.js';
import { useSmallDisks } from './small-disks.js';
import { useTmpDirs } from './tmp-dir.js';

// Generous: these wait on real Nix and real processes, which a loaded CI machine slows (seen: a disk-full case past 10 s at load 15).
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

const release = CONTROLLER_KEY;
const future = () => ({ issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString() });

describe('the agent daemon end to end (loopback controller stand-in, host in a directory)', () => {
  const tmpDir = useTmpDirs();
  const smallDisk = useSmallDisks(tmpDir);
  const running: RunningAgent[] = [];
  const controllers: FakeController[] = [];

  afterEach(async () => {
    await Promise.all(running.splice(0).map((a) => a.stop(100)));
    await Promise.all(controllers.splice(0).map((c) => c.stop().catch(() => {})));
  });

  async function setup(overrides: Record<string, unknown> = {}) {
    const controller = new FakeController();
    await controller.start();
    controllers.push(controller);
    const host = await fakeHost(await tmpDir());
    const prev = buildSystem(host, 'prev');
    await bootInto(host, prev);
    const tokenFile = join(host.root, 'enroll');
    await writeFile(tokenFile, controller.enrollToken);
    const parsed = parseConfig(
      {
        host: 'web-1',
        controllerUrl: controller.url,
        ...TRUST,
        stateDir: join(host.root, 'state'),
        enrollmentTokenFile: tokenFile,
        pollIntervalMs: 200,
        healthDeadlineMs: 5_000,
        checkSystemdUnits: false,
        useSystemdRun: false,
        paths: { profile: host.profile, currentSystem: host.currentSystem, bootedSystem: host.bootedSystem },
        ...overrides,
      },
      'test',
    );
    if (!parsed.ok) throw new Error(parsed.message);
    return { controller, host, prev, config: parsed.config };
  }

  async function start(config: AgentConfig): Promise<RunningAgent> {
    const agent = await startAgent(config, { logger: silentLogger() });
    running.push(agent);
    return agent;
  }

  async function finalPhase(controller: FakeController, version: number, phase: string): Promise<void> {
    await until(() => controller.reports.some((r) => r.manifestVersion === version && r.phase === phase));
  }

  it('enrolls, receives a pushed manifest, activates it and reports every phase in order', async () => {
    const { controller, host, config } = await setup();
    await start(config);
    await until(() => controller.connectedHosts().includes('web-1'));
    const next = buildSystem(host, 'next');
    controller.setManifest(1, signedManifest(release, { version: 1, storePath: next, ...future() }));
    await finalPhase(controller, 1, 'healthy');
    expect(controller.phases()).toEqual(['reconciled', 'accepted', 'realising', 'activating', 'checking', 'committing', 'healthy']);
    expect(controller.reports.map((r) => r.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await resolveSystem(host.currentSystem)).toBe(next);
  });

  it('starts and enrolls after a crash on the first start left an empty host key', async () => {
    const { controller, host, config } = await setup();
    // An agent killed during its first start: state written, host.key created but never filled.
    await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    await writeFile(join(config.stateDir, STATE_FILE), `${JSON.stringify(INITIAL_STATE)}\n`, { mode: 0o600 });
    await writeFile(join(config.stateDir, WATERMARK_FILE), `${JSON.stringify({ formatVersion: 1, highestVersion: 0, highestStorePath: null, highestFloor: 0 })}\n`, { mode: 0o600 });
    await writeFile(join(config.stateDir, 'host.key'), '', { mode: 0o600 });
    await start(config);
    await until(() => controller.connectedHosts().includes('web-1'));
    const next = buildSystem(host, 'next');
    controller.setManifest(1, signedManifest(release, { version: 1, storePath: next, ...future() }));
    await finalPhase(controller, 1, 'healthy');
  });

  it.each([
    ['full', 0],
    ['full but for one page', 4096],
  ])('holds a manifest back while its state directory is %s, says why at once, and applies it once there is room', async (_what, leave) => {
    const { controller, host, prev, config } = await setup({ spaceCheckIntervalMs: 200 });
    const disk = await smallDisk(2 * 1024 * 1024, config.stateDir);
    await start(config);
    await until(() => controller.connectedHosts().includes('web-1') && controller.phases().includes('reconciled'));
    await disk.fill(leave);

    const next = buildSystem(host, 'next');
    controller.setManifest(1, signedManifest(release, { version: 1, storePath: next, ...future() }));
    await finalPhase(controller, 1, 'refused');
    const refused = controller.reports.find((r) => r.manifestVersion === 1)!;
    expect(refused.detail.refusal).toBe('no-space');
    expect(refused.detail.reason).toContain(`the state directory ${config.stateDir} is full`);
    expect(await resolveSystem(host.currentSystem)).toBe(prev);

    await disk.free();
    await finalPhase(controller, 1, 'healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(next);
    const v1 = controller.reports.filter((r) => r.manifestVersion === 1).sort((a, b) => a.seq - b.seq);
    expect(v1.map((r) => r.phase)).toEqual(['refused', 'accepted', 'realising', 'activating', 'checking', 'committing', 'healthy']);
  });

  it('converges by polling when the websocket is disabled', async () => {
    const { controller, host, config } = await setup({ websocket: false });
    const next = buildSystem(host, 'next');
    controller.setManifest(1, signedManifest(release, { version: 1, storePath: next, ...future() }));
    await start(config);
    await finalPhase(controller, 1, 'healthy');
    expect(controller.connections).toBe(0);
    expect(await resolveSystem(host.currentSystem)).toBe(next);
    // Later polls are answered 304 and change nothing.
    const count = controller.reports.length;
    await new Promise((r) => setTimeout(r, 600));
    expect(controller.reports.length).toBe(count);
  });

  it('reports a refused manifest once, with its reason, and leaves the host unchanged', async () => {
    const { controller, host, prev, config } = await setup();
    await start(config);
    const next = buildSystem(host, 'next');
    controller.setManifest(1, signedManifest(release, { version: 1, host: 'db-1', storePath: next, ...future() }));
    await until(() => controller.reports.some((r) => r.phase === 'refused'));
    const refused = controller.reports.find((r) => r.phase === 'refused')!;
    expect(refused.detail).toEqual({ refusal: 'wrong-host', reason: 'manifest is for host "db-1", this is "web-1"' });
    // db-1's version number means nothing in web-1's sequence; the report claims none.
    expect(refused.manifestVersion).toBeNull();
    await new Promise((r) => setTimeout(r, 500));
    expect(controller.reports.filter((r) => r.phase === 'refused')).toHaveLength(1);
    expect(await resolveSystem(host.currentSystem)).toBe(prev);
  });

  it('handles a manifest that arrives during an activation after it, and only the newest', async () => {
    const { controller, host, config } = await setup();
    await start(config);
    await until(() => controller.connectedHosts().includes('web-1'));
    const slow = buildSystem(host, 'slow', 'slow');
    const second = buildSystem(host, 'second');
    const third = buildSystem(host, 'third');
    controller.setManifest(1, signedManifest(release, { version: 1, storePath: slow, ...future() }));
    await finalPhase(controller, 1, 'activating');
    controller.setManifest(2, signedManifest(release, { version: 2, storePath: second, ...future() }));
    controller.setManifest(3, signedManifest(release, { version: 3, storePath: third, ...future() }));
    await finalPhase(controller, 3, 'healthy');
    const versions = [...new Set(controller.reports.sort((a, b) => a.seq - b.seq).map((r) => r.manifestVersion))];
    expect(versions).toEqual([null, 1, 3]);
    expect(controller.reports.filter((r) => r.manifestVersion === 1).at(-1)!.phase).toBe('healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(third);
  });

  it('keeps reports while the controller is down and delivers them, once each, when it is back', async () => {
    const { controller, config } = await setup();
    let agent = await start(config);
    await until(() => controller.reports.length === 1);
    await controller.stop();
    await agent.stop(100);
    running.splice(running.indexOf(agent), 1);
    agent = await start(config); // its 'reconciled' report cannot be delivered yet
    await new Promise((r) => setTimeout(r, 300));
    expect(agent.outbox.size).toBe(1);
    await controller.restart();
    await until(() => controller.reports.length === 2);
    expect(controller.reports.map((r) => [r.seq, r.phase])).toEqual([
      [1, 'reconciled'],
      [2, 'reconciled'],
    ]);
  });

  async function restart(agent: RunningAgent, config: AgentConfig, beforeStart: () => Promise<void> = async () => {}): Promise<RunningAgent> {
    await agent.stop(100);
    running.splice(running.indexOf(agent), 1);
    await beforeStart();
    return start(config);
  }

  async function refusal(controller: FakeController, version: number) {
    await until(() => controller.reports.some((r) => r.manifestVersion === version && r.phase === 'refused'));
    return controller.reports.find((r) => r.manifestVersion === version && r.phase === 'refused')!.detail;
  }

  it('keeps replay protection when state.json is deleted: an older genuine manifest stays refused', async () => {
    const { controller, host, config } = await setup();
    const older = buildSystem(host, 'older');
    const newer = buildSystem(host, 'newer');
    const v1 = signedManifest(release, { version: 1, storePath: older, ...future() });
    let agent = await start(config);
    controller.setManifest(1, v1);
    await finalPhase(controller, 1, 'healthy');
    controller.setManifest(2, signedManifest(release, { version: 2, storePath: newer, ...future() }));
    await finalPhase(controller, 2, 'healthy');

    agent = await restart(agent, config, () => rm(join(config.stateDir, STATE_FILE)));
    // Whoever controls the controller's answers now replays v1, genuine and unexpired.
    controller.setManifest(1, v1);
    expect(await refusal(controller, 1)).toEqual({ refusal: 'replayed-version', reason: 'version 1 is not above the highest accepted version 2' });
    expect(await resolveSystem(host.currentSystem)).toBe(newer);
    expect(agent.state.get()).toMatchObject({ highestVersion: 2, highestStorePath: newer, stateLost: false });
  });

  it('refuses every manifest with state-lost when both copies are gone, until an operator rebootstraps it', async () => {
    const { controller, host, config } = await setup();
    const first = buildSystem(host, 'first');
    const second = buildSystem(host, 'second');
    let agent = await start(config);
    controller.setManifest(1, signedManifest(release, { version: 1, storePath: first, ...future() }));
    await finalPhase(controller, 1, 'healthy');

    agent = await restart(agent, config, async () => {
      await rm(join(config.stateDir, STATE_FILE));
      await rm(join(config.stateDir, WATERMARK_FILE));
    });
    // It still connects and reports: the stored v1 and a new v2 are both refused, the host stays put.
    const lost = await refusal(controller, 1);
    expect(lost.refusal).toBe('state-lost');
    expect(lost.reason).toContain('shoal-agent rebootstrap --config FILE --min-version N');
    controller.setManifest(2, signedManifest(release, { version: 2, storePath: second, ...future() }));
    expect((await refusal(controller, 2)).refusal).toBe('state-lost');
    expect(await resolveSystem(host.currentSystem)).toBe(first);

    // A restart alone changes nothing: the refusal is remembered, not re-derived, and said at start.
    agent = await restart(agent, config);
    expect(agent.state.get().stateLost).toBe(true);
    await until(() => controller.reports.filter((r) => r.phase === 'reconciled').length === 3);
    expect(controller.reports.filter((r) => r.phase === 'reconciled').at(-1)!.detail.reason).toMatch(/^state lost: refusing every manifest until `shoal-agent rebootstrap/);

    agent = await restart(agent, config, async () => {
      const outcome = await rebootstrap({ stateDir: config.stateDir, minVersion: 1, minFloor: 0 });
      expect(outcome.ok).toBe(true);
    });
    await finalPhase(controller, 2, 'healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(second);
  });
});
