import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishToCache } from '../lab/binary-cache.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { buildSystems, type LabSystem } from '../lab/systems.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { reportEvents } from './deploy-helpers.js';

/**
 * CI published a release before its closure reached the cache: the first deployment fails to
 * realise. Once the closure is pushed, a retry must succeed at once, not an hour later when
 * Nix's negative narinfo cache ("that path is not in that cache") expires.
 */
describe('a cache that was briefly missing a path', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let host: LabHost;
  let late: LabSystem;
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveUploadCache();
    controller = await lab.startController();
    // A system no cache has yet (its label is unique to this lab).
    late = (await buildSystems([{ name: 'late', label: `late ${lab.dir}` }], join(lab.dir, 'late-system'))).late!;
    host = await lab.addHost('web-1', { bootstrap: fixtures.systems.base });
    await host.start();
    await controller.waitForHost('web-1', 'connected', (s) => s.connection === 'websocket', 30_000, context);
  });
  afterAll(() => lab?.cleanup());

  it('deploys on the retry right after the path was pushed', async () => {
    const first = await controller.client.setDesired('web-1', late.path);
    await controller.waitForPhase('web-1', first.version, 'failed', 60_000, context);
    const failed = reportEvents(await controller.client.events('web-1')).filter((r) => r.manifestVersion === first.version).at(-1)!;
    expect(failed.detail.failure?.command).toContain('nix-store --realise');
    expect(host.currentSystem()).toBe(fixtures.systems.base.path);

    // CI's push arrives, signed with the key the hosts trust.
    await publishToCache({ dir: join(lab.dir, 'upload-cache'), key: fixtures.cache.key, paths: [late.path] });

    const retry = await controller.client.setDesired('web-1', late.path, 'switch');
    await controller.waitForPhase('web-1', retry.version, 'healthy', 60_000, context);
    expect(host.currentSystem()).toBe(late.path);
  });
});
