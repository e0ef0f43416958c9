import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabFixtures } from '../lab/fixtures.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

describe('lab binary cache and host stores', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
  });
  afterAll(() => lab?.cleanup());

  it('serves a signed closure that a host realises into its own store', async () => {
    const cache = await lab.serveCache();
    const host = await lab.addHost('cache-1');
    const v2 = fixtures.systems.v2;
    expect(existsSync(v2.path)).toBe(true);
    expect(host.hasStorePath(v2.path)).toBe(false);

    const result = await host.realise(v2.path);

    expect(result.exitCode, result.stderr).toBe(0);
    expect(host.hasStorePath(v2.path)).toBe(true);
    expect(await host.storePathValid(v2.path)).toBe(true);
    expect(cache.served(v2.path)).toBe(true);
    expect(cache.requests.some((r) => r.path.startsWith('/nar/') && r.status === 200)).toBe(true);
  });

  it('keeps hosts apart: each has its own store, current system and profile', async () => {
    const { base, v3 } = fixtures.systems;
    const one = await lab.addHost('cache-2', { bootstrap: base });
    const two = await lab.addHost('cache-3', { bootstrap: v3 });
    expect([one.currentSystem(), one.profileSystem()]).toEqual([base.path, base.path]);
    expect([two.currentSystem(), two.profileSystem()]).toEqual([v3.path, v3.path]);
    expect(one.hasStorePath(v3.path)).toBe(false);
    expect((await one.exec(['/bin/readlink', '/run/current-system'])).stdout.trim()).toBe(base.path);
  });

  it('lets Nix refuse a closure signed by a key the host does not trust', async () => {
    const untrusted = await lab.serveUntrustedCache();
    const host = await lab.addHost('cache-4');
    const system = fixtures.systems.untrusted;

    const result = await host.realise(system.path, { substituters: [untrusted.url] });

    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('is not signed by any of the keys');
    expect(untrusted.served(system.path)).toBe(true);
    expect(host.hasStorePath(system.path)).toBe(false);
  });

  it('accepts the same closure once its key is trusted, so the refusal above is about the key', async () => {
    const untrusted = await lab.serveUntrustedCache();
    const host = await lab.addHost('cache-5');
    const system = fixtures.systems.untrusted;

    const result = await host.realise(system.path, {
      substituters: [untrusted.url],
      trustedPublicKeys: [fixtures.untrustedCache.key.publicKey],
    });

    expect(result.exitCode, result.stderr).toBe(0);
    expect(host.hasStorePath(system.path)).toBe(true);
  });
});
