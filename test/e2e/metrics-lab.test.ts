import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { parseExposition, sampleValue } from '../controller/metrics/exposition.js';

describe('/metrics while the fleet lab deploys (real controller process, agents, Nix)', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const context = () => lab.diagnostics();

  const scrape = async () => {
    const response = await fetch(`${controller.url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    return parseExposition(await response.text());
  };

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController();
    const hosts = await Promise.all(['metrics-1', 'metrics-2'].map((name) => lab.addHost(name, { bootstrap: fixtures.systems.base })));
    await Promise.all(hosts.map((host) => host.start()));
    for (const host of hosts) {
      await controller.waitForHost(host.name, 'connected', (s) => s.connection === 'websocket' && s.phase !== null, 30_000, context);
    }
  });
  afterAll(() => lab?.cleanup());

  it('parses as Prometheus exposition format and counts a lab deployment: manifests, reports, durations, hosts by phase', async () => {
    const before = await scrape();
    expect(sampleValue(before, 'shoal_connected_agents')).toBe(2);
    expect(sampleValue(before, 'shoal_hosts_by_connection', { mode: 'websocket' })).toBe(2);
    const issuedBefore = sampleValue(before, 'shoal_manifests_issued_total', { cause: 'desired-set' }) ?? 0;
    const healthyBefore = sampleValue(before, 'shoal_reports_received_total', { phase: 'healthy' }) ?? 0;
    const deploymentsBefore = sampleValue(before, 'shoal_deployment_duration_seconds_count', { result: 'success' }) ?? 0;

    for (const host of ['metrics-1', 'metrics-2']) {
      const manifest = await controller.client.setDesired(host, fixtures.systems.v2.path);
      await controller.waitForPhase(host, manifest.version, 'healthy', 30_000, context);
    }

    const after = await scrape();
    expect(sampleValue(after, 'shoal_manifests_issued_total', { cause: 'desired-set' })).toBe(issuedBefore + 2);
    expect(sampleValue(after, 'shoal_reports_received_total', { phase: 'healthy' })).toBe(healthyBefore + 2);
    expect(sampleValue(after, 'shoal_reports_received_total', { phase: 'realising' })).toBeGreaterThanOrEqual(2);
    expect(sampleValue(after, 'shoal_deployment_duration_seconds_count', { result: 'success' })).toBe(deploymentsBefore + 2);
    expect(sampleValue(after, 'shoal_deployment_duration_seconds_sum', { result: 'success' })).toBeGreaterThan(0);
    expect(sampleValue(after, 'shoal_hosts', { phase: 'healthy' })).toBe(2);
  });
});
