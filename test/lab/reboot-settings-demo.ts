// `npx tsx test/lab/reboot-settings-demo.ts`: the transcript in the README's "Reboots and
// maintenance windows" on settings set on the controller: a lab controller and three hosts (real
// agents, real Nix) whose agents set no reboot policy or windows of their own; tag and host
// settings with `shoal tag set-reboot` / `shoal host set-reboot`, what `shoal host show` says,
// and a kernel rollout under the tag's reboot lock.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareFixtures } from './fixtures.js';
import { Lab, REPO_ROOT } from './lab.js';
import { run } from './run.js';

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'shoal-reboot-settings-demo-'));
  const fixtures = await prepareFixtures(join(work, 'fixtures'));
  const lab = await Lab.start({ fixtures });
  try {
    await lab.serveCache();
    const controller = await lab.startController({ args: ['--max-concurrent-reboots', '3'] });
    const tags = { 'db-1': ['db', 'eu'], 'db-2': ['db'], 'db-3': ['db'] };
    for (const [name, hostTags] of Object.entries(tags)) {
      const host = await lab.addHost(name, { bootstrap: fixtures.systems.base });
      await writeFile(host.paths.enrollToken, `${await controller.enrollmentToken(hostTags)}\n`, { mode: 0o600 });
      await host.start({ config: {}, rebootable: true });
    }
    for (const name of Object.keys(tags)) await controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket' && s.currentSystem !== null);

    const env = { ...process.env, SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: controller.adminToken, NO_COLOR: '1' };
    const shoal = async (...args: string[]) => {
      process.stdout.write(`$ shoal ${args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ')}\n`);
      const result = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'controller/src/cli/main.ts'), ...args], { env, cwd: REPO_ROOT });
      process.stdout.write(result.stdout + result.stderr);
      return result.stdout;
    };
    await shoal('tag', 'set-reboot', 'db', '--policy', 'when-needed', '--max-rebooting', '1', '--window', 'daily 00:00-23:59:59 UTC');
    await shoal('tag', 'set-reboot', 'eu', '--policy', 'never', '--window', 'sat,sun 02:00-05:00 Europe/Berlin');
    await shoal('host', 'show', 'db-1');
    await shoal('host', 'set-reboot', 'db-1', '--policy', 'when-needed', '--windows', 'always');
    await shoal('tag', 'list');
    await controller.client.createRelease({ name: 'kernel-6.12', hosts: Object.fromEntries(Object.keys(tags).map((n) => [n, fixtures.systems.newKernel.path])) });
    const started = await shoal('rollout', 'start', 'kernel-6.12', '--waves', '100%', '--max-rebooting', '2');
    const id = /ro-[0-9a-f]+/.exec(started)![0];
    await controller.waitForRollout(id, 'succeeded', { timeoutMs: 240_000 });
    await shoal('rollout', 'status', id);
    const waited = [];
    for (const name of Object.keys(tags)) {
      const events = await controller.client.events(name);
      if (events.some((e) => e.kind === 'report' && e.data.phase === 'awaiting-reboot-grant')) waited.push(name);
    }
    await shoal('history', waited[0] ?? 'db-2');
  } finally {
    await lab.cleanup();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
