// `npx tsx test/lab/publish-transcript.ts`: what CI sees, for the README's "Trust" section. A
// two-key lab controller with the lab flake's three hosts (real agents), a CI token, then
// `bin/shoal release publish --flake …` run for real on the lab flake, its output printed as a
// shell transcript, and `shoal release show`. Everything is released at the end.
import { join } from 'node:path';
import { ensureFixtures } from './fixture-cache.js';
import { Lab, REPO_ROOT } from './lab.js';
import { writeLabFlake } from './lab-flake.js';
import { run } from './run.js';

const HOSTS = ['web-1', 'web-2', 'db-1'];

async function main(): Promise<void> {
  const fixtures = await ensureFixtures();
  const lab = await Lab.start({ fixtures });
  try {
    const cache = await lab.serveUploadCache();
    const controller = await lab.startController({ trust: 'two-key' });
    const hosts = await Promise.all(HOSTS.map((name) => lab.addHost(name, { bootstrap: fixtures.systems.base })));
    await Promise.all(hosts.map((host) => host.start()));
    await Promise.all(HOSTS.map((name) => controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket')));
    // A fresh label per run: new store paths, so the build and the push do real work.
    const flake = await writeLabFlake(join(lab.dir, 'flake'), { git: true, hosts: Object.fromEntries(HOSTS.map((h) => [h, { label: `${h} ${lab.dir}` }])) });
    const env = { PATH: process.env.PATH ?? '', HOME: lab.dir, NIX_CONFIG: 'substituters =\nsandbox = false', SHOAL_CONTROLLER: controller.url };
    const shoal = (args: string[], extra: Record<string, string> = {}) => run(join(REPO_ROOT, 'bin/shoal'), args, { cwd: flake.dir, env: { ...env, ...extra } });

    const token = await shoal(['token', 'create', '--state-dir', controller.options.stateDir, '--name', 'ci', '--scope', 'ci']);
    const args = ['release', 'publish', '--flake', '.', '--name', 'fleet-2026-11-30', '--cache', cache.url, '--cache-key', fixtures.cache.key.secretKeyFile, '--key', controller.options.releaseKey.file, '--floor', '1'];
    const started = process.hrtime.bigint();
    const published = await shoal(args, { SHOAL_TOKEN: token.stdout.trim() });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stdout.write(`$ shoal ${args.join(' ')}\n${published.stderr}${published.stdout}`);
    process.stdout.write(`# exit ${published.exitCode}, ${seconds.toFixed(1)} s wall clock including node start\n`);
    const shown = await shoal(['release', 'show', 'fleet-2026-11-30'], { SHOAL_TOKEN: controller.adminToken });
    process.stdout.write(`$ shoal release show fleet-2026-11-30\n${shown.stdout}${shown.stderr}`);
    if (published.exitCode !== 0) process.exitCode = 1;
  } finally {
    await lab.cleanup();
  }
}

void main();
