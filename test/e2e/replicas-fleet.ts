import { join } from 'node:path';
import type { AgentConfigFile } from '../lab/agent-config.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { websocketConnects, websocketControllerFromLog, type DatabaseEngine, type LabReplicas } from '../lab/replicas.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { waitFor } from '../lab/wait.js';

/** Controller replicas on one database and `count` running agents spread across them, all on the base system. */
export interface ReplicaFleet {
  fixtures: LabFixtures;
  lab: Lab;
  replicas: LabReplicas;
  hosts: LabHost[];
  names: string[];
  /** The database as a client reaches it: the PostgreSQL URL with its password, or the SQLite file. */
  database: string;
  context: () => string;
}

export interface ReplicaFleetOptions {
  prefix: string;
  count: number;
  replicas: number;
  engine: DatabaseEngine;
  agent?: Partial<AgentConfigFile>;
}

/**
 * Starts a lab with `replicas` controllers on one database (a private PostgreSQL server, or a
 * SQLite file for one replica) and `count` hosts named `<prefix>-1` …, host i listing the
 * replicas' URLs starting with replica i mod N. Returns once every agent has a websocket and every
 * host's base system is known (through any replica: they share the database).
 */
export async function startReplicaFleet(options: ReplicaFleetOptions): Promise<ReplicaFleet> {
  const fixtures = await labFixtures();
  const lab = await Lab.start({ fixtures });
  try {
    await lab.serveCache();
    const database = options.engine === 'postgres' ? (await lab.startPostgres()).url : join(lab.dir, 'controller.sqlite');
    // A host counts as offline three poll intervals after its last poll: 3 s here, not 90.
    const replicas = await lab.startReplicas({ count: options.replicas, database, args: ['--poll-interval-seconds', '1'] });
    const names = Array.from({ length: options.count }, (_, i) => `${options.prefix}-${i + 1}`);
    const hosts: LabHost[] = [];
    for (const name of names) hosts.push(await lab.addHost(name));
    await Promise.all(hosts.map((host) => host.bootstrap(fixtures.systems.base)));
    for (const host of hosts) await host.start({ config: options.agent });
    const context = () => lab.diagnostics(15);
    await Promise.all(hosts.map((host) => waitForWebsocket(host, (url) => url !== null, context)));
    await Promise.all(
      names.map((name) =>
        replicas.any().waitForHost(name, 'known on the base system', (s) => s.currentSystem === fixtures.systems.base.path, 60_000, context),
      ),
    );
    return { fixtures, lab, replicas, hosts, names, database, context };
  } catch (error) {
    await lab.cleanup();
    throw error;
  }
}

/** Tears the fleet down: agents killed together first, then replicas, the database server and directories. */
export async function stopReplicaFleet(fleet: ReplicaFleet | undefined): Promise<void> {
  if (!fleet) return;
  try {
    await Promise.all(fleet.hosts.map((host) => host.kill()));
  } finally {
    await fleet.lab.cleanup();
  }
}

/** The controller URL the host's agent has its websocket to, per its log (null before the first connection). */
export function websocketOf(host: LabHost): string | null {
  return websocketControllerFromLog(host.agent?.lines ?? []);
}

/**
 * Waits until the host's agent logs a websocket connection, beyond the first `after` ones, to a
 * controller `accept` takes; returns that controller's URL.
 */
export async function waitForWebsocket(host: LabHost, accept: (url: string | null) => boolean, context?: () => string, after = 0, timeoutMs = 60_000): Promise<string> {
  return waitFor(
    `${host.name}: a websocket to an acceptable controller`,
    () => {
      const lines = host.agent?.lines ?? [];
      if (websocketConnects(lines) <= after) return null;
      const url = websocketControllerFromLog(lines);
      return url !== null && accept(url) ? url : null;
    },
    { timeoutMs, context: () => `last websocket: ${websocketOf(host)}\n${host.agentOutput(20)}${context ? `\n${context()}` : ''}` },
  );
}

/** The hosts whose agents have their websocket to `replica` now. */
export function hostsOn(fleet: ReplicaFleet, replica: LabController): LabHost[] {
  return fleet.hosts.filter((host) => websocketOf(host) === replica.url);
}
