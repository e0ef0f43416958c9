import type { HostEvent } from '../../shared/src/operator-api.js';
import type { RolloutStatus } from '../../shared/src/rollout-api.js';
import type { AgentConfigFile } from '../lab/agent-config.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { waitFor } from '../lab/wait.js';

/** A lab with a controller and `count` running agents, all on the base system and known to the controller as such. */
export interface Fleet {
  fixtures: LabFixtures;
  lab: Lab;
  controller: LabController;
  hosts: LabHost[];
  names: string[];
  context: () => string;
}

/**
 * Starts a fleet of `count` hosts named `<prefix>-1` … Hosts are bootstrapped and their agents
 * started in parallel; it returns once every host is connected and has reported the base system,
 * so a rollout started right after knows what each host ran before (what a rollback returns to).
 */
export async function startFleet(prefix: string, count: number, agent: Partial<AgentConfigFile> = {}): Promise<Fleet> {
  const fixtures = await labFixtures();
  const lab = await Lab.start({ fixtures });
  try {
    await lab.serveCache();
    // A host counts as offline three poll intervals after its last poll: 3 s here, not 90.
    const controller = await lab.startController({ args: ['--poll-interval-seconds', '1'] });
    const names = Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
    const hosts: LabHost[] = [];
    for (const name of names) hosts.push(await lab.addHost(name));
    await Promise.all(hosts.map((host) => host.bootstrap(fixtures.systems.base)));
    // Enrollment tokens are made one at a time; the agents then start together.
    for (const host of hosts) await host.start({ config: agent });
    const context = () => lab.diagnostics(15);
    await Promise.all(
      names.map((name) =>
        controller.waitForHost(name, 'connected on the base system', (s) => s.connection !== 'offline' && s.currentSystem === fixtures.systems.base.path, 60_000, context),
      ),
    );
    return { fixtures, lab, controller, hosts, names, context };
  } catch (error) {
    await lab.cleanup();
    throw error;
  }
}

/** Tears the fleet down: agents killed together first (one by one, cleanup would stop each gracefully). */
export async function stopFleet(fleet: Fleet | undefined): Promise<void> {
  if (!fleet) return;
  try {
    await Promise.all(fleet.hosts.map((host) => host.kill()));
  } finally {
    await fleet.lab.cleanup();
  }
}

/** Milliseconds since the epoch of an event. */
export const at = (event: HostEvent): number => Date.parse(event.at);

export function eventsOf(events: HostEvent[], kind: HostEvent['kind'], host?: string): HostEvent[] {
  return events.filter((e) => e.kind === kind && (host === undefined || e.host === host));
}

export function only(events: HostEvent[], kind: HostEvent['kind'], host?: string): HostEvent {
  const found = eventsOf(events, kind, host);
  if (found.length !== 1) throw new Error(`expected exactly one ${kind}${host ? ` for ${host}` : ''}, found ${found.length}: ${JSON.stringify(found)}`);
  return found[0]!;
}

/** The hosts of wave `index` in a rollout's status. */
export function waveHosts(status: RolloutStatus, index: number): string[] {
  return status.waves[index]!.hosts.map((h) => h.host);
}

/**
 * Manifests a rollout issued to a host, from its event log: a wave's as rollout-host-issued, a
 * rollback's or withdrawal's as manifest-issued; both carry the rollout id.
 */
export async function manifestsFromRollout(controller: LabController, host: string, rolloutId: string): Promise<HostEvent[]> {
  const events = await controller.client.events(host);
  return events.filter((e) => (e.kind === 'manifest-issued' || e.kind === 'rollout-host-issued') && e.data.rolloutId === rolloutId);
}

/** Waits until the lab host itself runs `path` (what /run/current-system points at). */
export function waitForSystem(host: LabHost, path: string, timeoutMs = 30_000): Promise<true> {
  return waitFor(`${host.name} running ${path}`, () => host.currentSystem() === path, {
    timeoutMs,
    context: () => `current: ${host.currentSystem()}\n${host.agentOutput(20)}`,
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
