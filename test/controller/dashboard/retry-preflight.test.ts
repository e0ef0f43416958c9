import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateNamedKey } from '../../../shared/src/keys.js';
import { serveCache, type CacheServer } from '../../lab/cache-server.js';
import { registeredHost, storePath, testController, type TestController } from '../helpers.js';
import { signedIn } from './session-helpers.js';

/** A retry is a new rollout: from the dashboard as over the API, it is refused while the cache cannot serve its systems. */
describe('dashboard retry and the cache preflight', () => {
  let dir: string;
  let cache: CacheServer;
  let ctl: TestController;

  beforeEach(async () => {
    // A real binary cache that has none of the release's paths.
    dir = mkdtempSync(join(tmpdir(), 'shoal-empty-cache-'));
    cache = await serveCache(dir);
    const key = generateNamedKey('cache-test-1');
    ctl = await testController({ cache: { caches: [{ url: cache.url, publicKeys: [{ keyId: key.keyId, publicKey: key.publicKey }] }], concurrency: 4, timeoutMs: 5_000 } });
  });
  afterEach(async () => {
    await ctl.close();
    await cache.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a retry whose closures the cache cannot serve, as the API does, and starts nothing', async () => {
    await registeredHost(ctl, 'web-1');
    const target = storePath('nixos-system-web-1', 'c');
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify({ name: 'r-missing', hosts: [{ host: 'web-1', storePath: target }] }) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'r-missing', waves: ['100%'], skipPreflight: true }) });
    expect(started.status).toBe(201);
    const { id } = (await started.json()) as { id: string };
    expect((await ctl.operator(`/v1/rollouts/${id}/abort`, { method: 'POST' })).status).toBe(200);

    const api = await ctl.operator(`/v1/rollouts/${id}/retry`, { method: 'POST' });
    expect(api.status).toBe(409);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('preflight-failed');

    const browser = await signedIn(ctl);
    const retried = await browser.post(`/dashboard/rollouts/${id}/retry`, { _csrf: browser.csrf });
    expect(retried.status).toBe(303);
    // Back on the same rollout's page, which says why and names the path.
    expect(retried.headers.get('location')).toBe(`/dashboard/rollouts/${encodeURIComponent(id)}`);
    const page = await (await browser.get(retried.headers.get('location')!)).text();
    expect(page).toContain('the binary cache cannot serve 1 path(s)');
    expect(page).toContain(`${target}: missing (in no configured binary cache); host web-1`);
    const list = (await (await ctl.operator('/v1/rollouts')).json()) as { rollouts: Array<{ id: string }> };
    expect(list.rollouts.map((r) => r.id)).toEqual([id]);
  });
});
