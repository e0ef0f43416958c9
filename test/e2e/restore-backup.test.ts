import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../controller/src/cli/run.js';
import { eventsOf, startFleet, stopFleet, type Fleet } from './rollouts-fleet.js';

/**
 * Issue 11: the controller's database is restored from a backup taken before a rollout. Every
 * host accepted manifests the restored controller never issued; without the agents' watermark at
 * login the next versions it issues would be refused as replays (or equivocations), host by host.
 */
describe('a controller restored from a backup taken before a rollout', () => {
  let fleet: Fleet;
  let dir: string;
  beforeAll(async () => {
    fleet = await startFleet('restore', 3);
    dir = mkdtempSync(join(tmpdir(), 'shoal-restore-'));
  });
  afterAll(async () => {
    await stopFleet(fleet);
    rmSync(dir, { recursive: true, force: true });
  });

  it('converges: the fleet takes the restored controller’s next rollout without any operator action on hosts', async () => {
    const { controller, names, fixtures, hosts } = fleet;
    const everyone = (path: string) => Object.fromEntries(names.map((name) => [name, path]));

    // 1. The backup, taken online with the CLI as an operator would.
    const backup = join(dir, 'controller-backup.sqlite');
    let output = '';
    const code = await runCli(['backup', '--out', backup], {
      env: { SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: controller.adminToken },
      stdout: (text) => (output += text),
      stderr: (text) => (output += text),
      fetch,
    });
    expect(code, output).toBe(0);

    // 2. A rollout the backup knows nothing of.
    await controller.client.createRelease({ name: 'after-backup', hosts: everyone(fixtures.systems.v2.path) });
    const first = await controller.client.startRollout({ release: 'after-backup', waves: ['100%'], healthDeadlineSeconds: 30 });
    await controller.waitForRollout(first.id, 'succeeded', { timeoutMs: 90_000, context: fleet.context });

    // 3. The restore procedure (controller/README.md): stop, put the backup in place, start.
    await controller.stop();
    const db = join(controller.options.stateDir, 'controller.sqlite');
    for (const suffix of ['-wal', '-shm']) rmSync(`${db}${suffix}`, { force: true });
    copyFileSync(backup, db);
    await controller.start();

    // 4. The operator deploys at once, whether or not each agent has reconnected yet.
    await controller.client.createRelease({ name: 'after-restore', hosts: everyone(fixtures.systems.v3.path) });
    const second = await controller.client.startRollout({ release: 'after-restore', waves: ['100%'], healthDeadlineSeconds: 30 });
    const done = await controller.waitForRollout(second.id, 'succeeded', { timeoutMs: 90_000, context: fleet.context });

    expect(done.waves.flatMap((wave) => wave.hosts.map((host) => host.state))).toEqual(names.map(() => 'healthy'));
    for (const host of hosts) expect(host.currentSystem()).toBe(fixtures.systems.v3.path);
    // Each host told the restored controller what it had accepted, and the controller went above it.
    for (const name of names) {
      const reported = eventsOf(await controller.client.events(name), 'version-reported', name);
      expect(reported.length, name).toBeGreaterThanOrEqual(1);
      expect(reported[0]!.data).toMatchObject({ reported: 1, floor: 0 });
      expect(['advanced', 'reissued']).toContain(reported[0]!.data.then);
    }
    const refusals = (await controller.client.hosts()).filter((host) => host.phase === 'refused');
    expect(refusals).toEqual([]);
  });
});
