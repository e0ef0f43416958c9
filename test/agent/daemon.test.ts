import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentConfig } from '../../agent/src/config.js';
import { startAgent, type RunningAgent } from '../../agent/src/daemon.js';
import { rebootstrap } from '../../agent/src/rebootstrap.js';
import { INITIAL_STATE, STATE_FILE, WATERMARK_FILE } from '../../agent/src/state.js';
import { resolveSystem } from '../../agent/src/system.js';
import { generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import { silentLogger, type Logger } from '../../shared/src/logger.js';
import { AgentRoutes } from '../../shared/src/protocol.js';
import { bootInto, buildSystem, fakeHost, fakeHostAgentConfig } from './activation-fixture.js';
import { captureLogger } from './log-capture.js';
import { useControllers, type AgentTestController } from './real-controller.js';
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

describe('the agent daemon end to end (the real controller on loopback, host in a directory)', () => {
  const tmpDir = useTmpDirs();
  const smallDisk = useSmallDisks(tmpDir);
  const startController = useControllers();
  const running: RunningAgent[] = [];

  // Registered after useControllers: the agents stop before their controller does.
  afterEach(async () => {
    await Promise.all(running.splice(0).map((a) => a.stop(100)));
  });

  async function setup(overrides: Record<string, unknown> = {}) {
    const controller = await startController();
    const host = await fakeHost(await tmpDir());
    const prev = buildSystem(host, 'prev');
    await bootInto(host, prev);
    const tokenFile = join(host.root, 'enroll');
    await writeFile(tokenFile, await controller.enrollmentToken());
    const config = fakeHostAgentConfig(host, { controllerUrl: controller.url, ...controller.trust, enrollmentTokenFile: tokenFile, ...overrides });
    return { controller, host, prev, config };
  }

  async function start(config: AgentConfig, logger: Logger = silentLogger()): Promise<RunningAgent> {
    const agent = await startAgent(config, { logger });
    running.push(agent);
    return agent;
  }

  async function finalPhase(controller: AgentTestController, version: number, phase: string): Promise<void> {
    await until(() => controller.reports().some((r) => r.manifestVersion === version && r.phase === phase));
  }

  it('enrolls, receives a pushed manifest, activates it and reports every phase in order', async () => {
    const { controller, host, config } = await setup();
    await start(config);
    await until(() => controller.connected('web-1'));
    const next = buildSystem(host, 'next');
    const version = await controller.setDesired('web-1', next);
    await finalPhase(controller, version, 'healthy');
    expect(controller.phases()).toEqual(['reconciled', 'accepted', 'realising', 'activating', 'checking', 'committing', 'healthy']);
    expect(controller.reports().map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(controller.publicKeyOf('web-1')).not.toBeNull();
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
    await until(() => controller.connected('web-1'));
    const next = buildSystem(host, 'next');
    const version = await controller.setDesired('web-1', next);
    await finalPhase(controller, version, 'healthy');
  });

  it.each([
    ['full', 0],
    ['full but for one page', 4096],
  ])('holds a manifest back while its state directory is %s, says why at once, and applies it once there is room', async (_what, leave) => {
    const { controller, host, prev, config } = await setup({ spaceCheckIntervalMs: 200 });
    const disk = await smallDisk(2 * 1024 * 1024, config.stateDir);
    await start(config);
    await until(() => controller.connected('web-1') && controller.phases().includes('reconciled'));
    await disk.fill(leave);

    const next = buildSystem(host, 'next');
    const version = await controller.setDesired('web-1', next);
    await finalPhase(controller, version, 'refused');
    const refused = controller.reports().find((r) => r.manifestVersion === version)!;
    expect(refused.detail.refusal).toBe('no-space');
    expect(refused.detail.reason).toContain(`the state directory ${config.stateDir} is full`);
    expect(await resolveSystem(host.currentSystem)).toBe(prev);

    await disk.free();
    await finalPhase(controller, version, 'healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(next);
    const reports = controller.reports().filter((r) => r.manifestVersion === version);
    expect(reports.map((r) => r.phase)).toEqual(['refused', 'accepted', 'realising', 'activating', 'checking', 'committing', 'healthy']);
  });

  it('converges by polling when the websocket is disabled', async () => {
    // Long-polls the controller holds for a second, so unchanged answers (304) come quickly.
    const { controller, host, config } = await setup({ websocket: false, longPollSeconds: 1 });
    const agent = await start(config);
    // Enrolled (it reported its start) and holding a long-poll: the manifest reaches it through that.
    await until(() => controller.phases().includes('reconciled') && controller.deps.bus.waiterCount() === 1);
    const next = buildSystem(host, 'next');
    const version = await controller.setDesired('web-1', next);
    await finalPhase(controller, version, 'healthy');
    expect(controller.eventCount('web-1', 'connected')).toBe(0);
    expect(controller.connectionMode('web-1')).toBe('polling');
    expect(await resolveSystem(host.currentSystem)).toBe(next);
    // Later polls are answered 304 and change nothing: two of them answered (the second was only
    // asked once the first was handled), then everything the agent had to say delivered.
    const reported = controller.reports().length;
    const since = controller.exchanges.length;
    const unchanged = () => controller.exchanges.slice(since).filter((e) => e.path === AgentRoutes.manifest && e.status === 304).length;
    await until(() => unchanged() >= 2);
    await until(() => agent.outbox.size === 0);
    expect(controller.reports()).toHaveLength(reported);
  });

  it('reports a refused manifest once, with its reason, and leaves the host unchanged', async () => {
    const { controller, host, prev, config } = await setup();
    await start(config);
    await until(() => controller.connected('web-1') && controller.phases().includes('reconciled'));
    // A genuine manifest of another host, served to web-1 by a tampered controller database.
    await controller.register('db-1', toBase64(generateNamedKey('db-1').publicKey));
    const next = buildSystem(host, 'next');
    const dbVersion = await controller.setDesired('db-1', next);
    await controller.serveTampered('web-1', controller.storedEnvelope('db-1', dbVersion), next);
    await until(() => controller.phases().includes('refused'));
    const refused = controller.reports().find((r) => r.phase === 'refused')!;
    expect(refused.detail).toEqual({ refusal: 'wrong-host', reason: 'manifest is for host "db-1", this is "web-1"' });
    // db-1's version number means nothing in web-1's sequence; the report claims none.
    expect(refused.manifestVersion).toBeNull();
    expect(await resolveSystem(host.currentSystem)).toBe(prev);
    // The next thing it reports is about the next manifest: the refusal was said once.
    const genuine = buildSystem(host, 'genuine');
    const version = await controller.setDesired('web-1', genuine);
    await finalPhase(controller, version, 'healthy');
    expect(controller.phases()).toEqual(['reconciled', 'refused', 'accepted', 'realising', 'activating', 'checking', 'committing', 'healthy']);
  });

  it('handles a manifest that arrives during an activation after it, and only the newest', async () => {
    const { controller, host, config } = await setup();
    await start(config);
    await until(() => controller.connected('web-1'));
    const slow = buildSystem(host, 'slow', 'slow');
    const second = buildSystem(host, 'second');
    const third = buildSystem(host, 'third');
    const v1 = await controller.setDesired('web-1', slow);
    await finalPhase(controller, v1, 'activating');
    await controller.setDesired('web-1', second);
    const v3 = await controller.setDesired('web-1', third);
    await finalPhase(controller, v3, 'healthy');
    const versions = [...new Set(controller.reports().map((r) => r.manifestVersion))];
    expect(versions).toEqual([null, v1, v3]);
    expect(controller.reports().filter((r) => r.manifestVersion === v1).at(-1)!.phase).toBe('healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(third);
  });

  it('keeps reports while the controller is down and delivers them, once each, when it is back', async () => {
    const { controller, config } = await setup();
    let agent = await start(config);
    await until(() => controller.reports().length === 1);
    await controller.stop();
    await agent.stop(100);
    running.splice(running.indexOf(agent), 1);
    const { logger, entries } = captureLogger();
    agent = await start(config, logger); // its 'reconciled' report cannot be delivered yet
    await until(() => entries().some((e) => e.msg === 'reports not delivered, will retry'));
    expect(agent.outbox.size).toBe(1);
    await controller.restart();
    await until(() => controller.reports().length === 2);
    await until(() => agent.outbox.size === 0);
    expect(controller.reports().map((r) => [r.seq, r.phase])).toEqual([
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

  async function refusal(controller: AgentTestController, version: number) {
    const refused = () => controller.reports().find((r) => r.manifestVersion === version && r.phase === 'refused');
    await until(() => refused() !== undefined);
    return refused()!.detail;
  }

  it('keeps replay protection when state.json is deleted: an older genuine manifest stays refused', async () => {
    const { controller, host, config } = await setup();
    const older = buildSystem(host, 'older');
    const newer = buildSystem(host, 'newer');
    let agent = await start(config);
    const v1 = await controller.setDesired('web-1', older);
    await finalPhase(controller, v1, 'healthy');
    const v2 = await controller.setDesired('web-1', newer);
    await finalPhase(controller, v2, 'healthy');

    agent = await restart(agent, config, () => rm(join(config.stateDir, STATE_FILE)));
    // Whoever controls the controller's answers now replays v1, genuine and unexpired.
    await controller.serveTampered('web-1', controller.storedEnvelope('web-1', v1), older);
    expect(await refusal(controller, v1)).toEqual({ refusal: 'replayed-version', reason: `version ${v1} is not above the highest accepted version ${v2}` });
    expect(await resolveSystem(host.currentSystem)).toBe(newer);
    expect(agent.state.get()).toMatchObject({ highestVersion: v2, highestStorePath: newer, stateLost: false });
  });

  it('refuses every manifest with state-lost when both copies are gone, until an operator rebootstraps it', async () => {
    const { controller, host, config } = await setup();
    const first = buildSystem(host, 'first');
    const second = buildSystem(host, 'second');
    let agent = await start(config);
    const v1 = await controller.setDesired('web-1', first);
    await finalPhase(controller, v1, 'healthy');

    agent = await restart(agent, config, async () => {
      await rm(join(config.stateDir, STATE_FILE));
      await rm(join(config.stateDir, WATERMARK_FILE));
    });
    // It still connects and reports: the stored v1 and a new v2 are both refused, the host stays put.
    const lost = await refusal(controller, v1);
    expect(lost.refusal).toBe('state-lost');
    expect(lost.reason).toContain('shoal-agent rebootstrap --config FILE --min-version N');
    const v2 = await controller.setDesired('web-1', second);
    expect((await refusal(controller, v2)).refusal).toBe('state-lost');
    expect(await resolveSystem(host.currentSystem)).toBe(first);

    // A restart alone changes nothing: the refusal is remembered, not re-derived, and said at start.
    agent = await restart(agent, config);
    expect(agent.state.get().stateLost).toBe(true);
    const reconciled = () => controller.reports().filter((r) => r.phase === 'reconciled');
    await until(() => reconciled().length === 3);
    expect(reconciled().at(-1)!.detail.reason).toMatch(/^state lost: refusing every manifest until `shoal-agent rebootstrap/);

    agent = await restart(agent, config, async () => {
      const outcome = await rebootstrap({ stateDir: config.stateDir, minVersion: v1, minFloor: 0 });
      expect(outcome.ok).toBe(true);
    });
    await finalPhase(controller, v2, 'healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(second);
  });
});
