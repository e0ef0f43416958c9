import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { deploymentTimeline, formatTimeline } from '../lab/timeline.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { phasesOf, reportEvents, systemOf } from './deploy-helpers.js';

const IN_ORDER = ['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy'];

/** The URL path of the NAR file the cache's narinfo for `storePath` points at. */
function narUrl(cacheDir: string, storePath: string): string {
  const narinfo = readFileSync(join(cacheDir, `${storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`), 'utf8');
  const url = /^URL: (.+)$/m.exec(narinfo)?.[1];
  if (!url) throw new Error(`narinfo of ${storePath} has no URL line`);
  return `/${url}`;
}

describe('deployment to a host, pushed and polled (real controller, agents, Nix, cache)', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let pushHost: LabHost;
  let pollHost: LabHost;
  const context = () => lab.diagnostics();

  beforeAll(async () => {
    fixtures = await labFixtures();
    // The agent as the NixOS package runs it (bundle, agent/node-flags); most lab tests run the sources.
    lab = await Lab.start({ fixtures, agent: 'bundle' });
    await lab.serveCache();
    controller = await lab.startController();
    [pushHost, pollHost] = await Promise.all([
      lab.addHost('push-1', { bootstrap: fixtures.systems.base }),
      lab.addHost('poll-1', { bootstrap: fixtures.systems.base }),
    ]);
    // Poll intervals of ten minutes (the lab's default is one second): a manifest that arrives during
    // a test came by push (push-1) or through a held long-poll (poll-1), never through an interval.
    await Promise.all([
      pushHost.start({ config: { pollIntervalMs: 600_000, longPollSeconds: 0 } }),
      pollHost.start({ config: { websocket: false, pollIntervalMs: 600_000 } }),
    ]);
  });
  afterAll(() => lab?.cleanup());

  it('realises, switches and commits a desired system pushed over the websocket, fetched from the cache, and reports each phase in order', async () => {
    const v2 = fixtures.systems.v2;
    await controller.waitForHost('push-1', 'connected by websocket', (s) => s.connection === 'websocket', 30_000, context);
    expect(pushHost.hasStorePath(v2.path)).toBe(false);
    expect(lab.cache!.served(v2.path)).toBe(false);
    const before = systemOf(pushHost);
    expect(before).toEqual({ current: fixtures.systems.base.path, profile: fixtures.systems.base.path, bootDefault: fixtures.systems.base.path });

    const manifest = await controller.client.setDesired('push-1', v2.path);
    const status = await controller.waitForPhase('push-1', manifest.version, 'healthy', 30_000, context);

    expect(status).toMatchObject({ currentSystem: v2.path, desired: { version: manifest.version, storePath: v2.path }, lastError: null });
    expect(systemOf(pushHost)).toEqual({ current: v2.path, profile: v2.path, bootDefault: v2.path });
    // A new profile generation, the old one kept for a manual rollback.
    expect(pushHost.generations().map((g) => g.path).slice(-2)).toEqual([fixtures.systems.base.path, v2.path]);
    // Activated with `test`, and only made the boot default (`boot`) after the health gate.
    expect(pushHost.activations().filter((a) => a.path === v2.path).map((a) => a.action)).toEqual(['test', 'boot']);
    // From the cache over HTTP: narinfo and NAR fetched, now in the host's own store.
    expect(lab.cache!.served(v2.path)).toBe(true);
    expect(lab.cache!.requests.some((r) => r.path === narUrl(fixtures.cache.dir, v2.path) && r.status === 200)).toBe(true);
    expect(pushHost.hasStorePath(v2.path)).toBe(true);

    const events = await controller.client.events('push-1');
    expect(phasesOf(events, manifest.version)).toEqual(IN_ORDER);
    const reports = reportEvents(events).filter((r) => r.manifestVersion === manifest.version);
    // The agent's own clock agrees with the order: each phase began after the previous one.
    for (let i = 1; i < reports.length; i++) expect(reports[i]!.reportedAt).toBeGreaterThanOrEqual(reports[i - 1]!.reportedAt);
    const healthy = reports.at(-1)!;
    expect(healthy.currentSystem).toBe(v2.path);
    expect(healthy.detail.previousSystem).toBe(fixtures.systems.base.path);
    expect(healthy.detail.closureBytes).toBeGreaterThan(0);
    // Only the toplevel was missing (kernel and sw are shared with base): something, but not everything, was downloaded.
    expect(healthy.detail.downloadedBytes).toBeGreaterThan(0);
    expect(healthy.detail.downloadedBytes).toBeLessThan(healthy.detail.closureBytes!);
    const desiredSet = events.find((e) => e.kind === 'desired-set' && e.data.version === manifest.version);
    expect(desiredSet?.id).toBeLessThan(healthy.eventId);

    const timeline = deploymentTimeline(events, manifest);
    expect(timeline).toMatchObject({ version: manifest.version, outcome: 'healthy' });
    for (const step of ['notifyMs', 'realiseMs', 'switchMs', 'healthMs', 'commitMs', 'reportMs'] as const) {
      expect(timeline![step], step).toBeGreaterThanOrEqual(0);
    }
    console.log(`push deployment timeline (push-1, v${manifest.version}): ${formatTimeline(timeline!)}`);
  });

  it('converges the same way on a host with the websocket disabled, which the controller shows as polling', async () => {
    const v3 = fixtures.systems.v3;
    await controller.waitForHost('poll-1', 'polling', (s) => s.connection === 'polling', 30_000, context);
    expect(pollHost.hasStorePath(v3.path)).toBe(false);

    const manifest = await controller.client.setDesired('poll-1', v3.path);
    const status = await controller.waitForPhase('poll-1', manifest.version, 'healthy', 30_000, context);

    expect(status).toMatchObject({ connection: 'polling', currentSystem: v3.path, lastError: null });
    expect(systemOf(pollHost)).toEqual({ current: v3.path, profile: v3.path, bootDefault: v3.path });
    expect(pollHost.activations().filter((a) => a.path === v3.path).map((a) => a.action)).toEqual(['test', 'boot']);
    expect(lab.cache!.served(v3.path)).toBe(true);
    expect(pollHost.hasStorePath(v3.path)).toBe(true);

    const events = await controller.client.events('poll-1');
    expect(phasesOf(events, manifest.version)).toEqual(IN_ORDER);
    // It never held a websocket.
    expect(events.filter((e) => e.kind === 'connected' || e.kind === 'disconnected')).toEqual([]);
    const timeline = deploymentTimeline(events, manifest)!;
    console.log(`poll deployment timeline (poll-1, v${manifest.version}, long-poll): ${formatTimeline(timeline)}`);
  });
});
