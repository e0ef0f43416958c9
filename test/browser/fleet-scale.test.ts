import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conditionRank, type HostCondition } from '../../shared/src/host-condition.js';
import type { RolloutStatus } from '../../shared/src/rollout-api.js';
import { newHostKeys, storePath, type TestHost } from '../controller/helpers.js';
import { AgentSocket, liveController, type LiveController } from '../controller/server-helpers.js';
import { hasChromium, launchChromium, CHROMIUM } from './chromium.js';
import { ReportingHost } from './fleet-agent.js';

const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');
const DOCS = join(import.meta.dirname, '..', '..', 'docs');
const FLEET = 1000;
/** Short intervals so the test sees many heartbeats and re-renders in a few seconds (production: 15 s and 5 s). */
const HEARTBEAT_MS = 1000;
const REFRESH_MS = 200;
const PRODUCTION_HEARTBEAT_MS = 15_000;
const FAILING = 'db-0015';
const ALSO_FAILING = 'db-0010';
const DRIFTED = 'cache-0006';

if (!hasChromium) console.warn(`browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium; .ci/setup does)`);

function hostName(i: number): string {
  const kind = i % 5 === 0 ? 'db' : i % 5 === 1 ? 'cache' : 'web';
  return `${kind}-${String(i).padStart(4, '0')}`;
}

/**
 * Bytes a page receives over the network as Chromium counts them, headers included: per request,
 * the total Chromium reports when it finished, or for a stream still open (the live updates) its
 * response headers and the chunks so far.
 */
class ByteMeter {
  private readonly perRequest = new Map<string, number>();
  private base = 0;
  chunks = 0;
  requests = 0;
  private constructor(readonly cdp: CDPSession) {}

  static async attach(page: Page): Promise<ByteMeter> {
    const cdp = await page.context().newCDPSession(page);
    const meter = new ByteMeter(cdp);
    const add = (id: string, bytes: number) => meter.perRequest.set(id, (meter.perRequest.get(id) ?? 0) + bytes);
    await cdp.send('Network.enable');
    cdp.on('Network.requestWillBeSent', () => (meter.requests += 1));
    cdp.on('Network.responseReceived', (event) => add(event.requestId, event.response.encodedDataLength ?? 0));
    cdp.on('Network.dataReceived', (event) => {
      add(event.requestId, event.encodedDataLength);
      meter.chunks += 1;
    });
    cdp.on('Network.loadingFinished', (event) => meter.perRequest.set(event.requestId, event.encodedDataLength));
    return meter;
  }

  get bytes(): number {
    let total = 0;
    for (const bytes of this.perRequest.values()) total += bytes;
    return total - this.base;
  }

  /** Counts from now on. */
  reset(): void {
    this.base += this.bytes;
    this.chunks = 0;
    this.requests = 0;
  }
}

describe.skipIf(!hasChromium)('the fleet page of a 1,000-host fleet in headless Chromium', () => {
  let ctl: LiveController;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let rollout: RolloutStatus;
  const keys = new Map<string, TestHost>();
  const sockets: AgentSocket[] = [];
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${ctl.handle.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${ctl.operatorToken}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
    return JSON.parse(text) as unknown;
  };
  const system = (host: string, release: string, hash = 'a') => storePath(`nixos-system-${host}-${release}`, hash);
  const setDesired = async (host: string, path: string) => ((await api('PUT', `/v1/hosts/${host}/desired`, { storePath: path })) as { version: number }).version;
  const rows = () => page.locator('#fleet-rows tr[data-host]');

  beforeAll(async () => {
    ctl = await liveController({ dashboard: { livePollMs: 100, live: { refreshMs: REFRESH_MS, heartbeatMs: HEARTBEAT_MS } } });
    // Registered through the operator API, as an operator would; no agents.
    const names = Array.from({ length: FLEET }, (_, i) => hostName(i + 1));
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(
        names.slice(i, i + 50).map(async (name) => {
          const host = newHostKeys(name);
          keys.set(name, host);
          await api('POST', '/v1/hosts', { name, publicKey: host.publicKey, tags: [name.split('-')[0]!, Number(name.slice(-4)) % 2 ? 'eu' : 'us'] });
        }),
      );
    }
    // Twenty hosts connected and healthy on 25.05.
    for (const name of names.filter((n) => n.startsWith('web-')).slice(0, 20)) {
      const socket = new AgentSocket(ctl.handle.url);
      sockets.push(socket);
      await socket.authenticate(keys.get(name)!);
      await socket.expect('welcome');
      const path = system(name, '25.05');
      const version = await setDesired(name, path);
      const agent = new ReportingHost(ctl.handle.url, keys.get(name)!);
      await agent.signIn();
      await agent.report(version, path, path, ['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy']);
    }
    // One host whose switch failed, one changed by hand.
    const failing = new ReportingHost(ctl.handle.url, keys.get(FAILING)!);
    await failing.signIn();
    const failingVersion = await setDesired(FAILING, system(FAILING, '25.05'));
    await failing.report(failingVersion, system(FAILING, '25.05'), system(FAILING, '24.11', 'b'), ['accepted', 'realising', 'activating', 'failed'], {
      command: 'switch-to-configuration test',
      exitCode: 4,
      signal: null,
      timedOut: false,
      outputTail: 'postgresql.service: Main process exited, code=exited, status=1/FAILURE',
    });
    const driftSocket = new AgentSocket(ctl.handle.url);
    sockets.push(driftSocket);
    await driftSocket.authenticate(keys.get(DRIFTED)!);
    await driftSocket.expect('welcome');
    const drifted = new ReportingHost(ctl.handle.url, keys.get(DRIFTED)!);
    await drifted.signIn();
    const driftVersion = await setDesired(DRIFTED, system(DRIFTED, '25.05'));
    await drifted.report(driftVersion, system(DRIFTED, '25.05'), system(DRIFTED, '25.05'), ['accepted', 'healthy']);
    // Then switched by hand: the agent's system watch reports what it now runs.
    await drifted.report(driftVersion, system(DRIFTED, '25.05'), system(DRIFTED, 'hand-built', 'c'), ['reconciled']);

    // A rollout of 25.11 to the web hosts: its canaries never connected, so it keeps running.
    const web = names.filter((n) => n.startsWith('web-')).slice(20, 80);
    await api('POST', '/v1/releases', { name: 'fleet-25.11', hosts: web.map((host) => ({ host, storePath: system(host, '25.11', 'd') })) });
    rollout = (await api('POST', '/v1/rollouts', { release: 'fleet-25.11', canary: 2, waves: ['50%', '100%'], offline: { waitSeconds: 3600, then: 'fail' } })) as RolloutStatus;

    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    await page.goto(`${ctl.handle.url}/dashboard`);
    await page.getByLabel('Operator token').fill(ctl.operatorToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    await mkdir(ARTIFACTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await browser?.close();
    await ctl?.close();
  });

  it('puts the failed host first and keeps every page in severity order', async () => {
    await page.goto(`${ctl.handle.url}/dashboard`);
    expect(await rows().count()).toBe(100);
    expect(await rows().first().getAttribute('data-host')).toBe(FAILING);
    const statuses = (await rows().evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-status')))) as HostCondition[];
    const ranks = statuses.map(conditionRank);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    // Offline hosts (most of this fleet) come before the drifted and healthy ones: those are on the last page.
    await page.getByRole('link', { name: 'Next →' }).click();
    await page.waitForURL(/page=2/);
    await page.goto(`${ctl.handle.url}/dashboard?page=10`);
    const last = (await rows().evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-status')))) as HostCondition[];
    expect(last.slice(-21)).toEqual(['drifted', ...Array<HostCondition>(20).fill('healthy')]);
    expect(await page.locator('#fleet-shown').textContent()).toContain(`Showing 901–1000 of ${FLEET}`);
  });

  it('filters by a count tile: the tile is a link to exactly the hosts it counts', async () => {
    await page.goto(`${ctl.handle.url}/dashboard`);
    const failedTile = page.locator('#fleet-counts a[data-status-link="failed"]');
    expect((await failedTile.textContent())?.trim()).toMatch(/^1\s*failed$/);
    await failedTile.click();
    await page.waitForURL(/status=failed/);
    expect(await rows().evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-host')))).toEqual([FAILING]);
    expect(await page.locator('#fleet-counts a[aria-current]').getAttribute('data-status-link')).toBe('failed');

    const healthyTile = page.locator('#fleet-counts a[data-status-link="healthy"]');
    expect(await healthyTile.locator('strong').textContent()).toBe('20');
    await healthyTile.click();
    await page.waitForURL(/status=healthy/);
    expect(await rows().count()).toBe(20);
    await page.locator('#fleet-counts a[data-status-link="all"]').click();
    await page.waitForURL((url) => !url.search.includes('status='));
    expect(await rows().count()).toBe(100);
  });

  it('searches by host name, tag and system name: as you type with JavaScript, by query string without', async () => {
    await page.goto(`${ctl.handle.url}/dashboard`);
    await page.getByRole('searchbox', { name: 'Search' }).fill('db-001');
    await page.waitForFunction(() => document.documentElement.getAttribute('data-search-results') === 'q=db-001');
    expect(page.url()).toContain('?q=db-001');
    // Still the page that was loaded: the search box kept focus and what was typed.
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('q');
    expect(await rows().evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-host')))).toEqual([FAILING, ALSO_FAILING]);

    const plain = await browser.newContext({ javaScriptEnabled: false });
    try {
      await plain.addCookies(await context.cookies());
      const noJs = await plain.newPage();
      await noJs.goto(`${ctl.handle.url}/dashboard`);
      await noJs.getByRole('searchbox', { name: 'Search' }).fill('hand-built');
      await noJs.getByRole('button', { name: 'Filter' }).click();
      await noJs.waitForURL(/q=hand-built/);
      expect(await noJs.locator('#fleet-rows tr[data-host]').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-host')))).toEqual([DRIFTED]);
      await noJs.goto(`${ctl.handle.url}/dashboard?q=cache&status=drifted`);
      expect(await noJs.locator('#fleet-rows tr[data-host]').count()).toBe(1);
    } finally {
      await plain.close();
    }
  });

  it('shows a strip for the running rollout that links to it, where never-connected hosts wait instead of being in progress', async () => {
    await page.goto(`${ctl.handle.url}/dashboard`);
    const strip = page.locator(`#fleet-rollouts li[data-rollout="${rollout.id}"]`);
    expect(await strip.getAttribute('data-state')).toBe('running');
    expect(await strip.textContent()).toContain('wave 1 of 3');
    await page.screenshot({ path: join(ARTIFACTS, 'fleet-desktop.png') });
    await strip.getByRole('link').click();
    await page.getByRole('heading', { name: `Rollout ${rollout.id}: release fleet-25.11` }).waitFor();
    const canaries = page.locator('.wave[data-wave="0"] a.host-cell');
    expect(await canaries.count()).toBe(2);
    expect(await canaries.evaluateAll((cells) => cells.map((cell) => cell.getAttribute('data-phase')))).toEqual(['waiting', 'waiting']);
    expect(await page.locator('.wave[data-wave="0"] .wave-head').textContent()).toContain('2 waiting for an offline agent');
    expect(await page.locator('#rollout-summary').textContent()).toContain('halts above 0 failed');
  });

  it('takes the first page of 1,000 hosts in under 200 KB, and an idle viewer under 10 KB a minute', async () => {
    const viewer = await context.newPage();
    const meter = await ByteMeter.attach(viewer);
    await viewer.goto(`${ctl.handle.url}/dashboard`);
    await viewer.waitForFunction(() => document.getElementById('live-state')?.textContent?.startsWith('Live'));
    const firstLoad = meter.bytes;
    expect(await viewer.locator('#fleet-rows tr[data-host]').count()).toBe(100);
    expect(firstLoad, `first load took ${firstLoad} bytes`).toBeLessThan(200 * 1024);

    // Idle: nothing changes in the fleet. The stream re-renders every REFRESH_MS and sends a
    // heartbeat every HEARTBEAT_MS; wait for 6 heartbeats, a window holding more heartbeats and
    // more re-renders than a production minute (4 heartbeats at 15 s, 12 re-renders at 5 s). As
    // unchanged renders send nothing, every byte in it is a heartbeat: a production minute
    // costs at most these bytes.
    const failedAgo = viewer.locator(`#fleet-rows tr[data-host="${FAILING}"] time[data-ago]`);
    const agoBefore = await failedAgo.textContent();
    meter.reset();
    await expect.poll(() => meter.chunks, { timeout: 20_000, interval: 100 }).toBeGreaterThanOrEqual(6);
    const idleBytes = meter.bytes;
    const perHeartbeat = idleBytes / meter.chunks;
    expect(await viewer.locator('html').getAttribute('data-live-updates')).toBeNull();
    expect(meter.requests).toBe(0);
    expect(idleBytes, `an idle window of ${meter.chunks} heartbeats took ${idleBytes} bytes`).toBeLessThan(10 * 1024);
    expect((60_000 / PRODUCTION_HEARTBEAT_MS) * perHeartbeat).toBeLessThan(10 * 1024);
    // The "ago" texts moved on meanwhile, rendered by the browser from timestamps.
    await expect.poll(() => failedAgo.textContent(), { timeout: 10_000 }).not.toBe(agoBefore);
    await viewer.close();
  });

  it('sends a changed host as one row, and moves it to where its severity puts it', async () => {
    const viewer = await context.newPage();
    const meter = await ByteMeter.attach(viewer);
    await viewer.goto(`${ctl.handle.url}/dashboard`);
    await viewer.waitForFunction(() => document.getElementById('live-state')?.textContent?.startsWith('Live'));
    await viewer.evaluate(() => ((window as unknown as { shoalMark: number }).shoalMark = 1));
    meter.reset();
    // Another host fails: it must join the first at the top (by name among the failed), without a reload.
    const agent = new ReportingHost(ctl.handle.url, keys.get(ALSO_FAILING)!);
    await agent.signIn();
    const version = await setDesired(ALSO_FAILING, system(ALSO_FAILING, '25.05'));
    await agent.report(version, system(ALSO_FAILING, '25.05'), system(ALSO_FAILING, '24.11', 'b'), ['accepted', 'failed']);
    await expect
      .poll(() => viewer.locator('#fleet-rows tr[data-host]').evaluateAll((trs) => trs.slice(0, 2).map((tr) => tr.getAttribute('data-host'))), { timeout: 15_000 })
      .toEqual([ALSO_FAILING, FAILING]);
    expect(await viewer.evaluate(() => (window as unknown as { shoalMark?: number }).shoalMark)).toBe(1);
    expect(await viewer.locator('#fleet-rows tr[data-host]').count()).toBe(100);
    expect(await viewer.locator('#fleet-counts a[data-status-link="failed"] strong').textContent()).toBe('2');
    // A few rows and the counts, not the 100-row table (about 70 KB).
    expect(meter.bytes, `the change took ${meter.bytes} bytes`).toBeLessThan(20 * 1024);
    await viewer.close();
  });

  it('wraps a long store path on a phone: the host page, its actions and the confirmation fit the screen', async () => {
    const host = 'cache-0011';
    // The longest name a store path may have (211 characters), as a NixOS system with many labels gets.
    const long = storePath(`nixos-system-${host}-${'x'.repeat(211 - `nixos-system-${host}-`.length)}`, 'f');
    await setDesired(host, long);
    await api('POST', `/v1/hosts/${host}/pause`);
    const phoneContext = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      await phoneContext.addCookies(await context.cookies());
      const phone = await phoneContext.newPage();
      /** How wide the page is, text spilling out of its box included, in CSS pixels. */
      const widest = () => phone.evaluate(() => document.documentElement.scrollWidth);
      await phone.goto(`${ctl.handle.url}/dashboard/hosts/${host}`);
      expect(await phone.locator('#host-summary code.path').first().textContent()).toBe(long);
      expect(await phone.locator('#host-summary').textContent()).toContain('paused');
      expect(await widest()).toBeLessThanOrEqual(390);
      await phone.screenshot({ path: join(ARTIFACTS, 'host-phone-long-path.png'), fullPage: true });
      // Set desired, forced past the pause: the confirmation page shows the whole path too.
      await phone.getByLabel('although paused').check();
      await phone.getByRole('button', { name: 'Set desired system…' }).click();
      await phone.getByText('although the host is paused?').waitFor();
      expect(await phone.locator('.confirm code.path').textContent()).toBe(long);
      expect(await widest()).toBeLessThanOrEqual(390);
    } finally {
      await phoneContext.close();
      await api('POST', `/v1/hosts/${host}/resume`);
    }
  });

  it('shows the fleet with a failure and a running rollout on a desktop and a phone (README screenshots)', async () => {
    const desktop = await context.newPage();
    await desktop.setViewportSize({ width: 1280, height: 860 });
    await desktop.goto(`${ctl.handle.url}/dashboard`);
    await desktop.waitForFunction(() => document.getElementById('live-state')?.textContent?.startsWith('Live'));
    await desktop.screenshot({ path: join(ARTIFACTS, 'fleet-desktop.png') });
    const phoneContext = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    try {
      await phoneContext.addCookies(await context.cookies());
      const phone = await phoneContext.newPage();
      await phone.goto(`${ctl.handle.url}/dashboard`);
      await phone.waitForFunction(() => document.getElementById('live-state')?.textContent?.startsWith('Live'));
      // Nothing sticks out sideways: long store paths and names wrap.
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await phone.screenshot({ path: join(ARTIFACTS, 'fleet-phone.png') });
      await phone.goto(`${ctl.handle.url}/dashboard/hosts/${FAILING}`);
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await phone.screenshot({ path: join(ARTIFACTS, 'host-phone.png'), fullPage: true });
    } finally {
      await phoneContext.close();
    }
    await desktop.close();
    if (process.env.SHOAL_UPDATE_DOCS === '1') {
      await mkdir(DOCS, { recursive: true });
      for (const name of ['fleet-desktop.png', 'fleet-phone.png']) await copyFile(join(ARTIFACTS, name), join(DOCS, name));
    }
  });
});
