import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateNamedKey, type NamedSecretKey } from '../../shared/src/keys.js';
import { ReleaseBundle, signStatement, statementPayload } from '../../shared/src/release-statement.js';
import { Release } from '../../shared/src/rollout-api.js';
import { shoal, type CliResult } from '../controller/cli/cli-helpers.js';
import { loadKey, signedBundle } from '../lab/ci.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { writeLabFlake } from '../lab/lab-flake.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { systemOf } from './deploy-helpers.js';

const HOSTS = ['web-1', 'web-2', 'db-1'] as const;

/**
 * CI's whole path on a two-key lab, every part real: the lab flake evaluated and built by Nix,
 * closures pushed into the lab's upload cache signed with the cache key the hosts trust,
 * statements signed with the CI key (which the controller never sees), the bundle published with
 * a `ci`-scoped token made by `shoal token create`, a rollout by an admin, and agents that check
 * both signatures before they install anything.
 */
describe('flake → build → cache → sign → publish → rollout → hosts (two-key)', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let hosts: LabHost[];
  let ciKey: NamedSecretKey;
  let ciToken: string;
  let flake: { dir: string; revision: string | null };
  let published: CliResult;
  /** Where Nix keeps its user state during the CLI's builds; no substituter, nothing leaves the machine. */
  let nixEnv: Record<string, string>;
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    // Served before hosts are added, so their agents substitute from it (what push-closures fills).
    await lab.serveUploadCache();
    controller = await lab.startController({ trust: 'two-key' });
    ciKey = loadKey(controller.options.releaseKey);
    hosts = await Promise.all(HOSTS.map((name) => lab.addHost(name, { bootstrap: fixtures.systems.base })));
    await Promise.all(hosts.map((host) => host.start()));
    await Promise.all(HOSTS.map((name) => controller.waitForHost(name, 'connected', (s) => s.connection === 'websocket', 30_000, context)));

    nixEnv = { HOME: lab.dir, NIX_CONFIG: 'substituters =\nsandbox = false' };
    const token = await shoal(['token', 'create', '--state-dir', controller.options.stateDir, '--name', 'ci', '--scope', 'ci'], nixEnv);
    expect(token.code, token.stderr).toBe(0);
    ciToken = token.stdout.trim();

    // Labels make this run's systems new store paths, so the fixture cache cannot already hold them.
    flake = await writeLabFlake(join(lab.dir, 'flake'), {
      git: true,
      hosts: Object.fromEntries(HOSTS.map((name) => [name, { label: `${name} ${lab.dir}` }])),
    });
    published = await shoal(
      [
        'release', 'publish', '--flake', flake.dir, '--name', 'fleet-1', '--description', 'the lab flake',
        '--cache', lab.uploadCache!.url, '--cache-key', fixtures.cache.key.secretKeyFile,
        '--key', controller.options.releaseKey.file, '--floor', '1', '--bundle-out', join(lab.dir, 'fleet-1-bundle.json'),
      ],
      { ...nixEnv, SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: ciToken },
    );
  }, 240_000);
  afterAll(() => lab?.cleanup());

  const bundle = () => ReleaseBundle.parse(JSON.parse(readFileSync(join(lab.dir, 'fleet-1-bundle.json'), 'utf8')));

  it('publishes the flake as a CI-signed release with one command and a ci-scoped token', async () => {
    expect(published.code, `${published.stderr}\n${context()}`).toBe(0);
    expect(published.stdout).toBe(`published release fleet-1 (3 hosts, signed by ${ciKey.keyId}, floor 1)\n`);
    expect(published.stderr.split('\n').filter((l) => /^\[\d\/4\]/.test(l))).toEqual([
      `[1/4] build ${flake.dir}#nixosConfigurations`,
      `[2/4] push closures to ${lab.uploadCache!.url}`,
      '[3/4] sign',
      `[4/4] publish to ${controller.url}`,
    ]);
    // The closures went to the upload cache, and none of them was in the fixture cache.
    for (const { storePath } of bundle().hosts) {
      expect(lab.uploadCache!.requests.some((r) => r.method === 'PUT' && r.path === `/${storePath.slice(11, 43)}.narinfo`)).toBe(true);
      expect(lab.cache!.served(storePath)).toBe(false);
    }
  });

  it('shows who signed the release, with what key, at what floor, from which revision, when (API and shoal release show)', async () => {
    const flakeLockHash = createHash('sha256').update(readFileSync(join(flake.dir, 'flake.lock'))).digest('hex');
    const { createdAt } = bundle();
    const response = await controller.client.request('GET', '/v1/releases/fleet-1');
    expect(response.status).toBe(200);
    const release = Release.parse(response.body);
    expect(release).toMatchObject({
      name: 'fleet-1',
      createdBy: 'operator:ci',
      provenance: { signedBy: 'ci', keyId: ciKey.keyId, signedAt: createdAt, floor: 1, source: { revision: flake.revision, flakeLockHash } },
      hosts: bundle().hosts.map(({ host, storePath }) => ({ host, storePath })).sort((a, b) => a.host.localeCompare(b.host)),
    });

    const shown = await shoal(['release', 'show', 'fleet-1'], { SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: controller.adminToken, TZ: 'UTC' });
    expect(shown.code, shown.stderr).toBe(0);
    const minute = createdAt.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, ' UTC');
    expect(shown.stdout).toContain(`signed by CI key ${ciKey.keyId} at ${minute}, floor 1\n`);
    expect(shown.stdout).toContain(`built from revision ${flake.revision}, flake.lock sha256 ${flakeLockHash}\n`);
  });

  it('does not let the ci token do anything but publish: starting a rollout is 403', async () => {
    const attempt = await controller.client.request('POST', '/v1/rollouts', { release: 'fleet-1', waves: ['100%'] }, { token: ciToken });
    expect(attempt.status).toBe(403);
    expect(attempt.body).toMatchObject({ error: { code: 'insufficient-scope' } });
    const viaCli = await shoal(['rollout', 'start', 'fleet-1', '--waves', '100%'], { SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: ciToken });
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toContain('insufficient-scope');
    expect(await controller.client.request('GET', '/v1/rollouts', undefined, { token: ciToken })).toMatchObject({ status: 403 });
    expect((await controller.client.request('GET', '/v1/rollouts')).body).toEqual({ rollouts: [] });
  });

  it('rolls the release out: every host healthy on its own new system from the flake', async () => {
    const rollout = await controller.client.startRollout({ release: 'fleet-1', canary: 1, waves: ['100%'] });
    await controller.waitForRollout(rollout.id, 'succeeded', { timeoutMs: 120_000, context });
    for (const { host, storePath } of bundle().hosts) {
      const labHost = lab.hosts.get(host)!;
      expect(systemOf(labHost)).toEqual({ current: storePath, profile: storePath, bootDefault: storePath });
      expect(readFileSync(join(labHost.paths.nix, storePath.slice('/nix'.length), 'nixos-version'), 'utf8')).toBe(`${host} ${lab.dir}\n`);
      expect(lab.uploadCache!.served(storePath)).toBe(true);
      expect(await controller.client.host(host)).toMatchObject({ phase: 'healthy', currentSystem: storePath });
      // The agent accepted CI's floor with the release.
      expect(labHost.agentState()).toMatchObject({ highestFloor: 1, highestStorePath: storePath });
    }
  });

  it('refuses a bundle in which one statement is not signed by a trusted CI key, naming the host, and stores nothing', async () => {
    const paths = Object.fromEntries(bundle().hosts.map(({ host, storePath }) => [host, storePath]));
    const bad = signedBundle('fleet-2', paths, ciKey, { floor: 1 });
    const rogue = generateNamedKey('rogue-ci-1');
    const web2 = bad.hosts.find((h) => h.host === 'web-2')!;
    web2.statement = signStatement(statementPayload(bad, web2, bad.floor), rogue);
    const file = join(lab.dir, 'fleet-2-bundle.json');
    writeFileSync(file, JSON.stringify(bad));

    const result = await shoal(['release', 'publish', file], { SHOAL_CONTROLLER: controller.url, SHOAL_TOKEN: ciToken });
    expect(result).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'shoal: release "fleet-2" refused: host "web-2": statement-unknown-key: release statement signed by rogue-ci-1, ' +
        'none of which is a trusted release key (invalid-release, HTTP 400)\n',
    });
    expect((await controller.client.request('GET', '/v1/releases/fleet-2')).status).toBe(404);
  });
});
