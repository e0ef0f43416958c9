import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { deploymentTimeline } from '../lab/timeline.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

/** The lab's process helpers against the real controller and agent. */
describe('lab agent and controller lifecycle', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let host: LabHost;
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController();
    host = await lab.addHost('life-1', { bootstrap: fixtures.systems.base });
  });
  afterAll(() => lab?.cleanup());

  it('starts the controller with a readable admin token and a typed operator client', async () => {
    expect(controller.adminToken.length).toBeGreaterThan(10);
    expect(await controller.client.hosts()).toEqual([]);
    const denied = await controller.client.request('GET', '/v1/hosts', undefined, { token: 'wrong' });
    expect(denied.status).toBe(401);
  });

  it('runs a real agent inside the host that enrolls and deploys v2 from the lab cache', async () => {
    await host.start();
    await controller.waitForHost('life-1', 'connected', (s) => s.connection !== 'offline', 30_000, context);
    const v2 = fixtures.systems.v2;

    const manifest = await controller.client.setDesired('life-1', v2.path);
    const { version } = manifest;
    const status = await controller.waitForPhase('life-1', version, 'healthy', 30_000, context);

    expect(status.currentSystem).toBe(v2.path);
    expect([host.currentSystem(), host.profileSystem(), host.bootDefault()]).toEqual([v2.path, v2.path, v2.path]);
    expect(lab.cache!.served(v2.path)).toBe(true);
    expect(host.activations().filter((a) => a.path === v2.path).map((a) => a.action)).toEqual(['test', 'boot']);
    const timeline = deploymentTimeline(await controller.client.events('life-1'), manifest);
    expect(timeline).toMatchObject({ version, outcome: 'healthy' });
    for (const step of ['notifyMs', 'realiseMs', 'switchMs', 'healthMs', 'commitMs', 'reportMs'] as const) {
      expect(timeline![step]).toBeGreaterThanOrEqual(0);
    }
  });

  it('stops the agent with SIGTERM through the namespace init, and it exits by itself', async () => {
    const agent = host.agent!;
    await host.stop(8_000);
    // Code 0 and no signal: it exited by itself; the SIGKILL after the grace period would show as a signal.
    expect(agent.status).toEqual({ code: 0, signal: null });
  });

  it('restarts the controller on the same state dir and port, and a restarted agent reconnects', async () => {
    const url = controller.url;
    const token = controller.adminToken;
    await controller.restart();
    expect([controller.url, controller.adminToken]).toEqual([url, token]);
    await host.start();
    const status = await controller.waitForHost('life-1', 'reconnected', (s) => s.connection === 'websocket', 30_000, context);
    expect(status.currentSystem).toBe(fixtures.systems.v2.path);
  });

  it('fails loudly when a restart finds its port taken, and starts again once it is free', async () => {
    const { host: address } = controller.options;
    const port = controller.port;
    await controller.stop();
    // The running agent dials the port too: hang up on it, or closing the squatter would wait for its connections.
    const squatter = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen(port, address, resolve);
    });
    try {
      await expect(controller.start()).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
    await controller.start();
    expect(controller.port).toBe(port);
  });

  it('kills everything in the host with SIGKILL', async () => {
    const agent = host.agent!;
    await host.kill();
    expect(agent.status?.signal).toBe('SIGKILL');
    expect(agent.running).toBe(false);
  });
});
