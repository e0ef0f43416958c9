import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePublicKey } from '../../../shared/src/keys.js';
import { serveCache, type CacheServer } from '../../lab/cache-server.js';
import type { LabFixtures } from '../../lab/fixtures.js';
import { labFixtures } from '../../lab/vitest-fixtures.js';
import { registeredHost, testController, type TestController } from '../helpers.js';
import { signedIn, type Browser } from './session-helpers.js';

/** The dashboard's release page and host diff page, reading the lab's real binary cache. */
describe('dashboard diff pages', () => {
  let fixtures: LabFixtures;
  let cache: CacheServer;
  let ctl: TestController;
  let browser: Browser;

  beforeAll(async () => {
    fixtures = await labFixtures();
    cache = await serveCache(fixtures.cache.dir);
    ctl = await testController({ cache: { caches: [{ url: cache.url, publicKeys: [parsePublicKey(fixtures.cache.key.publicKey)] }], concurrency: 8, timeoutMs: 5_000 } });
    for (const name of ['web-1', 'web-2']) await registeredHost(ctl, name);
    const response = await ctl.operator('/v1/releases', {
      method: 'POST',
      body: JSON.stringify({ name: 'gen-2', hosts: ['web-1', 'web-2'].map((host) => ({ host, storePath: fixtures.systems.realisticNext.path })) }),
    });
    expect(response.status).toBe(201);
    browser = await signedIn(ctl);
  });
  afterAll(async () => {
    ctl?.close();
    await cache?.close();
  });

  it("shows a release's changes, its preflight and a link to each host's diff", async () => {
    const page = await browser.get('/dashboard/releases/gen-2');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Cache preflight passed');
    expect(html).toContain('<td>openssl</td><td>+ 3.3.2</td>');
    // Neither host has reported what it runs: said so, not guessed.
    expect(html).toContain('Partly known');
    const link = /href="(\/dashboard\/hosts\/web-1\/diff\?target=[^"]+)"/.exec(html)![1]!.replace(/&amp;/g, '&');
    const hostPage = await browser.get(link);
    expect(hostPage.status).toBe(200);
    const hostHtml = await hostPage.text();
    expect(hostHtml).toContain(fixtures.systems.realisticNext.path);
    expect(hostHtml).toContain('<td>linux</td><td>+ 6.18.1</td>');
    expect(hostHtml).toContain('has not reported what it runs');
  });

  it('answers 404 for a release that does not exist', async () => {
    expect((await browser.get('/dashboard/releases/nope')).status).toBe(404);
  });
});
