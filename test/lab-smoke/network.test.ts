import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { runOk } from '../lab/run.js';
import type { LabSystem } from '../lab/systems.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

describe('lab host networks', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let port: number;
  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures, network: true });
    port = (await lab.serveCache()).port;
  });
  afterAll(() => lab?.cleanup());

  const sw = async (host: LabHost, system: LabSystem, action = 'test') => {
    const result = await host.exec([`${system.path}/bin/switch-to-configuration`, action]);
    expect(result.exitCode, result.stderr).toBe(0);
  };

  it('puts a networked host on the lab bridge, where it reaches the cache and the cache reaches it', async () => {
    const host = await lab.addHost('net-1', { bootstrap: fixtures.systems.base });
    expect(host.network?.address).toMatch(/^10\.213\.\d+\.\d+$/);
    expect(await host.canReach(lab.serviceAddress, port), await lab.networkDiagnostics()).toBe(true);
    // The bootstrap itself fetched over the bridge.
    expect(lab.cache!.served(fixtures.systems.base.path)).toBe(true);
  });

  it('cuts the host off when a break-network system activates, and an ok system heals it', async () => {
    const host = await lab.addHost('net-2', { bootstrap: fixtures.systems.base });
    const { breakNetwork, base } = fixtures.systems;
    await host.realiseOk(breakNetwork.path);

    await sw(host, breakNetwork);
    expect(await host.networkUp()).toBe(false);
    expect(await host.canReach(lab.serviceAddress, port)).toBe(false);

    await sw(host, base, 'switch');
    expect(await host.networkUp()).toBe(true);
    expect(await host.canReach(lab.serviceAddress, port), await lab.networkDiagnostics()).toBe(true);
  });

  it('cuts only that host: its neighbour on the same bridge stays reachable', async () => {
    const cut = await lab.addHost('net-3', { bootstrap: fixtures.systems.base });
    const neighbour = await lab.addHost('net-4', { bootstrap: fixtures.systems.base });
    await cut.realiseOk(fixtures.systems.breakNetwork.path);
    await sw(cut, fixtures.systems.breakNetwork);
    expect(await cut.canReach(lab.serviceAddress, port)).toBe(false);
    expect(await neighbour.canReach(lab.serviceAddress, port), await lab.networkDiagnostics()).toBe(true);
  });

  it('keeps a host reaching the lab services when hosts with lower MAC addresses join the bridge', async () => {
    // A port's address, set as if its host had joined with it: the kernel recomputes the bridge's
    // own address either way (by default it follows the lowest port's).
    const joinWithMac = async (name: string, mac: string) => {
      const host = await lab.addHost(name);
      await runOk('ip', ['link', 'set', host.network!.bridgePort, 'address', mac]);
      return host;
    };
    const host = await lab.addHost('net-6');
    await joinWithMac('net-7', '02:00:00:00:00:02');
    // `host` now has the gateway's MAC address in its neighbour table, as after a bootstrap.
    expect(await host.canReach(lab.serviceAddress, port), await lab.networkDiagnostics()).toBe(true);
    await joinWithMac('net-8', '02:00:00:00:00:01');
    // Had the bridge's address moved to the new lowest port, frames to the one `host` knows would be dropped.
    expect(await host.canReach(lab.serviceAddress, port), await lab.networkDiagnostics()).toBe(true);
  });

  it('leaves the machine network alone for a host without its own namespace', async () => {
    const host = await lab.addHost('net-5', { network: false, bootstrap: fixtures.systems.base });
    await host.realiseOk(fixtures.systems.breakNetwork.path);
    await sw(host, fixtures.systems.breakNetwork);
    expect(await host.canReach(lab.serviceAddress, port)).toBe(true);
  });
});
