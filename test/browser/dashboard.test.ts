import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutSpec, type RolloutStatus } from '../../shared/src/rollout-api.js';
import { planRollout } from '../../controller/src/rollouts/plan.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { hasChromium, launchChromium, CHROMIUM } from './chromium.js';

const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');
const DOCS = join(import.meta.dirname, '..', '..', 'docs');
const HOSTS = ['web-1', 'web-2', 'web-3'];
const RELEASE = 'dash-demo';

if (!hasChromium) console.warn(`browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium; .ci/setup does)`);

/** A page-level marker that only survives if the page was not reloaded: proves an update came live. */
async function mark(page: Page): Promise<void> {
  await page.evaluate(() => ((window as unknown as { shoalMark: number }).shoalMark = 1));
}
async function stillMarked(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as unknown as { shoalMark?: number }).shoalMark === 1);
}

describe.skipIf(!hasChromium)('dashboard in headless Chromium against the fleet lab', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const hosts = new Map<string, LabHost>();
  let browser: Browser;
  let page: Page;
  let rollout: RolloutStatus;
  // Roles follow the plan: which host is the canary depends on the release name.
  let canary: string;
  let failing: string;
  let late: string;
  const context = () => lab.diagnostics();
  const cell = (host: string, phase: string) => page.locator(`#rollout-waves a.host-cell[data-host="${host}"][data-phase="${phase}"]`);

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController();
    for (const name of HOSTS) hosts.set(name, await lab.addHost(name, { bootstrap: fixtures.systems.base }));
    await Promise.all([...hosts.values()].map((host) => host.start()));
    for (const name of HOSTS) await controller.waitForHost(name, 'connected', (s) => s.connection !== 'offline', 30_000, context);
    const plan = planRollout(
      RolloutSpec.parse({ release: RELEASE, canary: 1, waves: ['100%'] }),
      { name: RELEASE, hosts: HOSTS.map((host) => ({ host, storePath: fixtures.systems.v2.path })) },
      new Map(),
    );
    if (!plan.ok) throw new Error(plan.problems.join('; '));
    canary = plan.plan.waves[0]!.hosts[0]!;
    [failing, late] = plan.plan.waves[1]!.hosts as [string, string];
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    await mkdir(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await lab?.cleanup();
  });

  it('refuses a wrong token, then signs in with the operator token and shows the fleet', async () => {
    await page.goto(`${controller.url}/dashboard`);
    await expect.poll(() => page.url()).toContain('/dashboard/login');
    await page.getByLabel('Operator token').fill('shoal_op_not-a-real-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not known to this controller');

    await page.getByLabel('Operator token').fill(controller.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    for (const name of HOSTS) {
      const row = page.locator(`#fleet-table tr[data-host="${name}"]`);
      await expect.poll(() => row.count()).toBe(1);
      expect(await row.textContent()).toContain('websocket');
    }
    expect(await page.locator('#fleet-counts').textContent()).toContain('3 hosts');
    await page.screenshot({ path: join(ARTIFACTS, 'fleet-before-rollout.png'), fullPage: true });
  });

  it('draws a started rollout and updates it live: the canary turns healthy, the gate opens after the bake', async () => {
    // The late host's agent is down, so its wave-2 cell stays "in progress" until we start it: it
    // polled within three poll intervals, so the controller still counts it as connected (a host that
    // is offline would show "waiting"; see fleet-scale.test.ts).
    await hosts.get(late)!.stop();
    await controller.client.request('POST', '/v1/releases', {
      name: RELEASE,
      hosts: HOSTS.map((host) => ({ host, storePath: host === failing ? fixtures.systems.failSwitch.path : fixtures.systems.v2.path })),
    });
    const started = await controller.client.request('POST', '/v1/rollouts', {
      release: RELEASE,
      canary: 1,
      waves: ['100%'],
      bakeSeconds: 3,
      approvalBefore: [1],
      failureThreshold: { count: 1 },
      healthDeadlineSeconds: 60,
      offline: { waitSeconds: 120, then: 'fail' },
    });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    rollout = started.body as RolloutStatus;

    await page.getByRole('link', { name: 'Rollouts' }).click();
    await page.getByRole('link', { name: rollout.id }).click();
    await page.getByRole('heading', { name: `Rollout ${rollout.id}: release ${RELEASE}` }).waitFor();
    await mark(page);
    expect(await page.locator('.wave[data-wave="0"] .canary-mark').textContent()).toBe('canary');
    await cell(canary, 'healthy').waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Approve wave 2' }).waitFor({ timeout: 30_000 });
    expect(await page.locator('#rollout-summary').textContent()).toContain('waiting-approval');
    expect(await cell(late, 'pending').count()).toBe(1);
    expect(await stillMarked(page)).toBe(true);
  });

  it('approves the gated wave with the button, then a wave bar cell changes colour live as the lab host reports', async () => {
    await page.getByRole('button', { name: 'Approve wave 2' }).click();
    await expect.poll(() => page.locator('.flash.ok').textContent()).toContain('approved the waiting wave');
    await cell(late, 'in-progress').waitFor({ timeout: 10_000 });
    await mark(page);
    await page.screenshot({ path: join(ARTIFACTS, 'rollout-in-progress.png'), fullPage: true });
    const updatesBefore = Number((await page.locator('html').getAttribute('data-live-updates')) ?? 0);

    await hosts.get(late)!.start();
    await cell(late, 'healthy').waitFor({ timeout: 30_000 });
    expect(await stillMarked(page)).toBe(true);
    expect(Number(await page.locator('html').getAttribute('data-live-updates'))).toBeGreaterThan(updatesBefore);
  });

  it("shows the failed host's failing command and output tail", async () => {
    await cell(failing, 'failed').waitFor({ timeout: 30_000 });
    const tail = page.locator(`.failed-host[data-host="${failing}"] pre.tail`);
    await tail.waitFor({ timeout: 15_000 });
    expect(await tail.textContent()).toContain('lab-app.service: Main process exited, code=exited, status=1/FAILURE');
    expect(await page.locator(`.failed-host[data-host="${failing}"]`).textContent()).toContain('switch-to-configuration');
    await page.locator('#rollout-summary .badge').filter({ hasText: /succeeded|halted/ }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'rollout.png'), fullPage: true });
    if (process.env.SHOAL_UPDATE_DOCS === '1') {
      await mkdir(DOCS, { recursive: true });
      await copyFile(join(ARTIFACTS, 'rollout.png'), join(DOCS, 'rollout.png'));
    }
  });

  it("shows the failed host's timeline with the rollback, and filters the fleet by status without JavaScript", async () => {
    await page.getByRole('link', { name: failing }).first().click();
    await page.getByRole('heading', { name: `Host ${failing}` }).waitFor();
    const timeline = page.locator('#host-timeline');
    expect(await timeline.locator('pre.tail').first().textContent()).toContain('status=1/FAILURE');
    expect(await timeline.textContent()).toMatch(/rolled-back|failed/);
    expect(await page.locator('#host-generations').textContent()).toContain('v1');
    await page.screenshot({ path: join(ARTIFACTS, 'host.png'), fullPage: true });

    await page.getByRole('link', { name: 'Fleet' }).click();
    await expect.poll(() => page.locator(`#fleet-table tr[data-host="${failing}"]`).getAttribute('data-status')).toBe('failed');
    expect(await page.locator(`#fleet-table tr[data-host="${late}"]`).getAttribute('data-status')).toBe('healthy');
    await page.screenshot({ path: join(ARTIFACTS, 'fleet.png'), fullPage: true });

    const plain = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
    try {
      await plain.addCookies(await page.context().cookies());
      const phone = await plain.newPage();
      await phone.goto(`${controller.url}/dashboard?status=failed`);
      const rows = phone.locator('#fleet-table tr[data-host]');
      expect(await rows.count()).toBe(1);
      expect(await rows.first().getAttribute('data-host')).toBe(failing);
      await phone.screenshot({ path: join(ARTIFACTS, 'fleet-phone-failed.png'), fullPage: true });
    } finally {
      await plain.close();
    }
  });
});
