// `npm run demo`: a controller, a binary cache and three hosts (real agents, each in its own
// mount namespace with its own /nix and /run) on this machine; deploys a new system to all
// three through the operator API and shows where each host stands. `--keep` leaves it all
// running for the CLI; `--network` gives each host its own network namespace too.
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostStatus, ManifestSummary } from '../../shared/src/operator-api.js';
import { TERMINAL_PHASES } from '../../shared/src/phases.js';
import { generateCacheKey, publishToCache } from './binary-cache.js';
import { ResourceScope } from './cleanup.js';
import { Lab, REPO_ROOT } from './lab.js';
import { run } from './run.js';
import { buildSystems } from './systems.js';
import { deploymentTimeline, formatTimeline } from './timeline.js';
import { waitFor } from './wait.js';

const HOSTS = ['web-1', 'web-2', 'db-1'];
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
const say = (text: string) => process.stdout.write(`[${elapsed()}] ${text}\n`);
const short = (path: string | null | undefined) => (path ? path.replace(/^\/nix\/store\/(.{8}).{24}-/, '/nix/store/$1…-') : '-');

async function main(argv: string[]): Promise<void> {
  const keep = argv.includes('--keep');
  const network = argv.includes('--network');
  const work = await mkdtemp(join(tmpdir(), 'shoal-demo-'));
  const demoScope = new ResourceScope();
  demoScope.add({ label: `demo dir ${work}`, release: () => rm(work, { recursive: true, force: true }), releaseSync: () => rmSync(work, { recursive: true, force: true }) });
  try {
    await deploy(work, keep, network);
  } finally {
    if (!keep) await demoScope.releaseAll();
  }
}

async function deploy(work: string, keep: boolean, network: boolean): Promise<void> {
  say('building two NixOS systems (fake toplevels, real Nix)…');
  const systems = await buildSystems(
    [
      { name: 'demo-1', label: 'demo generation 1' },
      { name: 'demo-2', label: 'demo generation 2' },
    ],
    join(work, 'systems'),
  );
  const [v1, v2] = [systems['demo-1']!, systems['demo-2']!];
  say(`  v1 ${v1.path}\n          v2 ${v2.path}`);

  say('signing their closures and publishing them to a binary cache…');
  const key = await generateCacheKey(join(work, 'keys'), 'demo-cache-1');
  const cacheDir = join(work, 'cache');
  await publishToCache({ dir: cacheDir, key, paths: [v1.path, v2.path] });

  const lab = await Lab.start({ fixtures: { cache: { dir: cacheDir, key } }, network, keepDir: false });
  try {
    const cache = await lab.serveCache();
    say(`binary cache serving on ${cache.url} (key ${key.publicKey.slice(0, 24)}…)`);
    const controller = await lab.startController();
    say(`controller listening on ${controller.url} (state in ${controller.options.stateDir})`);

    say(`installing ${HOSTS.join(', ')} with v1 (each its own /nix, /run${network ? ', network namespace' : ''})…`);
    const hosts = await Promise.all(HOSTS.map((name) => lab.addHost(name, { bootstrap: v1 })));
    for (const host of hosts) await host.start();
    say('agents started; waiting for them to enroll and connect…');
    await waitFor(
      'all agents connected',
      async () => {
        const list = await controller.client.hosts();
        return HOSTS.every((name) => list.some((h) => h.name === name && h.connection !== 'offline'));
      },
      { timeoutMs: 30_000, context: () => hosts.map((h) => `--- ${h.name}\n${h.agentOutput(15)}`).join('\n') },
    );
    for (const h of await controller.client.hosts()) say(`  ${h.name.padEnd(6)} connected by ${h.connection}, running ${short(h.currentSystem)}`);

    say(`deploying v2 to all hosts through the operator API (PUT /v1/hosts/NAME/desired)…`);
    const deployStart = Date.now();
    const manifests = new Map<string, ManifestSummary>();
    for (const name of HOSTS) manifests.set(name, await controller.client.setDesired(name, v2.path));
    const versions = new Map([...manifests].map(([name, m]) => [name, m.version]));

    const seen = new Map<string, string>();
    const finished = new Map<string, HostStatus>();
    await waitFor(
      'every host to finish the deployment',
      async () => {
        for (const status of await controller.client.hosts()) {
          if (!versions.has(status.name) || finished.has(status.name)) continue;
          const phase = status.reportedVersion === versions.get(status.name) ? status.phase : null;
          if (phase && seen.get(status.name) !== phase) {
            seen.set(status.name, phase);
            say(`  ${status.name.padEnd(6)} ${phase}${status.lastError ? ` (${status.lastError})` : ''}`);
          }
          if (phase && TERMINAL_PHASES.has(phase)) finished.set(status.name, status);
        }
        return finished.size === HOSTS.length;
      },
      { timeoutMs: 60_000, intervalMs: 50, context: () => hosts.map((h) => `--- ${h.name}\n${h.agentOutput(15)}`).join('\n') },
    );
    say(`deployment finished in ${((Date.now() - deployStart) / 1000).toFixed(1)}s`);

    say('fleet status (shoal status):');
    const env = { ...process.env, SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: controller.adminToken };
    const status = await run(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'controller/src/cli/main.ts'), 'status'], { cwd: REPO_ROOT, env });
    if (status.exitCode === 0) process.stdout.write(status.stdout.trimEnd().replace(/^/gm, '    ') + '\n');
    else {
      say(`  (shoal status failed: ${status.stderr.trim()}; the lab's own view instead)`);
      for (const h of finished.values()) say(`    ${h.name.padEnd(6)} ${String(h.phase).padEnd(12)} ${short(h.currentSystem)}`);
    }
    say('where the time went (from each host\'s event log):');
    for (const host of hosts) {
      const timeline = deploymentTimeline(await controller.client.events(host.name), manifests.get(host.name)!);
      say(`  ${host.name.padEnd(6)} ${timeline ? formatTimeline(timeline) : 'no terminal report'}`);
    }
    say('what the hosts themselves say:');
    for (const host of hosts) {
      const profile = host.generations().at(-1);
      say(`  ${host.name.padEnd(6)} /run/current-system → ${short(host.currentSystem())}, profile generation ${profile?.number} → ${short(profile?.path)}`);
    }
    const allGood = hosts.every((h) => h.currentSystem() === v2.path && h.profileSystem() === v2.path);
    say(allGood ? 'all hosts run v2.' : 'not every host runs v2: see above.');

    if (keep) {
      say('the lab keeps running. In another shell:');
      process.stdout.write(
        [
          `  dashboard: ${controller.url}/dashboard`,
          `    sign in with the operator token in ${join(controller.options.stateDir, 'admin-token')}`,
          `  CLI (shoal is on the PATH after .ci/setup; bin/shoal works too):`,
          `    export SHOAL_CONTROLLER=${controller.url}`,
          `    export SHOAL_TOKEN_FILE=${join(controller.options.stateDir, 'admin-token')}`,
          `    shoal status`,
          `    shoal history web-1`,
          `    shoal set web-1 ${v1.path}`,
          `  agent logs: ${lab.dir}/<host>/agent.log; controller log: ${controller.options.stateDir}/controller.log`,
          '  Press Ctrl-C to stop everything and clean up.',
          '',
        ].join('\n'),
      );
      await new Promise(() => undefined);
    }
    if (!allGood) process.exitCode = 1;
  } finally {
    if (!keep) {
      await lab.cleanup();
      say('cleaned up.');
    }
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`demo failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
