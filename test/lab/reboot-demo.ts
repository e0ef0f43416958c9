// `npx tsx test/lab/reboot-demo.ts`: the transcript in the README's "Reboots and maintenance
// windows": a lab controller and three hosts (real agents, real Nix); CI-signed releases whose
// bundles carry each system's facts; `shoal rollout plan` predicting who reboots; the rollout
// rebooting one host at a time under the fleet reboot lock; the event log of one host.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeEd25519 } from '../../shared/src/ed25519.js';
import { PROTOCOL_VERSION } from '../../shared/src/protocol.js';
import { signReleaseBundle, type ReleaseBuild } from '../../shared/src/release-statement.js';
import { systemFacts } from '../../controller/src/cli/release-facts.js';
import { loadKey } from './ci.js';
import { prepareFixtures } from './fixtures.js';
import { Lab, REPO_ROOT } from './lab.js';
import { run } from './run.js';

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'shoal-reboot-demo-'));
  const fixtures = await prepareFixtures(join(work, 'fixtures'));
  const lab = await Lab.start({ fixtures });
  try {
    await lab.serveCache();
    const controller = await lab.startController({ args: ['--max-concurrent-reboots', '1'] });
    const policies = { 'web-1': 'when-needed', 'web-2': 'when-needed', 'db-1': 'never' } as const;
    for (const [name, policy] of Object.entries(policies)) {
      const host = await lab.addHost(name, { bootstrap: fixtures.systems.base });
      await host.start({ config: { reboot: { policy } }, rebootable: true });
    }
    for (const name of Object.keys(policies)) await controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket' && s.currentSystem !== null);

    const key = loadKey(controller.options.releaseKey);
    const publish = async (name: string, hosts: Record<string, string>) => {
      const systems = Object.entries(hosts).map(([host, storePath]) => ({ host, storePath }));
      const facts = await systemFacts(systems, process.env, () => {});
      const build: ReleaseBuild = {
        protocol: PROTOCOL_VERSION,
        kind: 'shoal-release-build' as const,
        name,
        description: '',
        source: { revision: null, flakeLockHash: null },
        createdAt: new Date().toISOString(),
        hosts: systems.map((s) => ({ ...s, facts: facts.get(s.host)! })),
      };
      await controller.client.publishBundle(signReleaseBundle(build, key, 1, nodeEd25519));
    };
    const { base, newKernel, newInhibitors, v2 } = fixtures.systems;
    await publish('r1', { 'web-1': base.path, 'web-2': base.path, 'db-1': base.path });
    await publish('r2', { 'web-1': newKernel.path, 'web-2': newInhibitors.path, 'db-1': v2.path });

    const env = { ...process.env, SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: controller.adminToken, NO_COLOR: '1' };
    const shoal = async (...args: string[]) => {
      process.stdout.write(`$ shoal ${args.join(' ')}\n`);
      const result = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'controller/src/cli/main.ts'), ...args], { env, cwd: REPO_ROOT });
      process.stdout.write(result.stdout + result.stderr);
      return result.stdout;
    };
    await shoal('rollout', 'plan', 'r2', '--waves', '100%');
    const started = await shoal('rollout', 'start', 'r2', '--waves', '100%');
    const id = /ro-[0-9a-f]+/.exec(started)![0];
    await controller.waitForRollout(id, 'succeeded', { timeoutMs: 180_000 });
    await shoal('rollout', 'status', id);
    // The host that had to wait for the lock tells the whole story.
    const waited = [];
    for (const name of ['web-1', 'web-2']) {
      const events = await controller.client.events(name);
      if (events.some((e) => e.kind === 'report' && e.data.phase === 'awaiting-reboot-grant')) waited.push(name);
    }
    await shoal('history', waited[0] ?? 'web-2');
  } finally {
    await lab.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
