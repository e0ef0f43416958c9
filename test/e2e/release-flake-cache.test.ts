import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReleaseBuild } from '../../shared/src/release-statement.js';
import type { CacheServer } from '../lab/cache-server.js';
import type { LabFixtures } from '../lab/fixtures.js';
import { Lab } from '../lab/lab.js';
import { writeLabFlake } from '../lab/lab-flake.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { shoal } from '../controller/cli/cli-helpers.js';

/**
 * The first half of CI's path, with a real lab host at the end: `shoal release build` on the lab
 * flake, `push-closures` into an HTTP cache signed with the key the hosts trust, and the host
 * installing the system from that cache alone (the fixture cache does not have it).
 */
describe('a system built from the lab flake and pushed by shoal installs on a lab host', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let uploadCache: CacheServer;
  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    uploadCache = await lab.serveUploadCache();
  });
  afterAll(() => lab?.cleanup());

  it('builds, pushes and installs web-1 from the uploaded closure', async () => {
    const env = { HOME: lab.dir, NIX_CONFIG: 'substituters =\nsandbox = false' };
    const flake = await writeLabFlake(join(lab.dir, 'flake'), { git: true, hosts: { 'web-1': { label: `web-1 ${lab.dir}` } } });
    const buildFile = join(lab.dir, 'release-build.json');
    const built = await shoal(['release', 'build', '--flake', flake.dir, '--name', 'flake-1', '-o', buildFile], env);
    expect(built.code, built.stderr).toBe(0);
    const [web1] = ReleaseBuild.parse(JSON.parse(readFileSync(buildFile, 'utf8'))).hosts;
    const pushed = await shoal(['release', 'push-closures', '--to', uploadCache.url, '--cache-key', fixtures.cache.key.secretKeyFile, '--release', buildFile], env);
    expect(pushed.code, pushed.stderr).toBe(0);

    const host = await lab.addHost('web-1', { network: false, bootstrap: fixtures.systems.base });
    expect(host.hasStorePath(web1!.storePath)).toBe(false);
    await host.bootstrap(web1!.storePath);
    expect(host.currentSystem()).toBe(web1!.storePath);
    expect(uploadCache.served(web1!.storePath)).toBe(true);
    expect(lab.cache!.served(web1!.storePath)).toBe(false);
  });
});
