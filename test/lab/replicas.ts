import { parseExposition, sampleValue } from '../controller/metrics/exposition.js';
import type { LabController } from './controller.js';
import { waitFor } from './wait.js';

/** The metric the lease holder sets to 1 (0 on every other replica). */
export const LEASE_METRIC = 'shoal_engine_lease_held';

export type DatabaseEngine = 'sqlite' | 'postgres';

export function engineOf(database: string): DatabaseEngine {
  return /^postgres(ql)?:\/\//.test(database) ? 'postgres' : 'sqlite';
}

/** `urls` rotated left by `by`: agent i gets replica i mod N first, so agents spread across replicas. */
export function rotated<T>(urls: readonly T[], by: number): T[] {
  if (urls.length === 0) return [];
  const start = ((by % urls.length) + urls.length) % urls.length;
  return [...urls.slice(start), ...urls.slice(0, start)];
}

function logMessage(line: string): { msg?: unknown; controller?: unknown } | null {
  if (!line.startsWith('{')) return null;
  try {
    return JSON.parse(line) as { msg?: unknown; controller?: unknown };
  } catch {
    return null;
  }
}

/**
 * The controller an agent's websocket is connected to now, from the agent's log: the `controller`
 * of its last "websocket connected" line, or null (never connected, or the line has no URL).
 */
export function websocketControllerFromLog(lines: readonly string[]): string | null {
  for (let i = lines.length - 1; i >= 0; i--) {
    const entry = logMessage(lines[i]!);
    if (entry?.msg === 'websocket connected') return typeof entry.controller === 'string' ? entry.controller : null;
  }
  return null;
}

/** How many times the agent's websocket was welcomed so far (a reconnect adds one). */
export function websocketConnects(lines: readonly string[]): number {
  return lines.filter((line) => logMessage(line)?.msg === 'websocket connected').length;
}

/**
 * N controller processes on one database (issue 16): same keys, same config, each with its own
 * state dir and port. On SQLite there is one (SQLite is one process's database).
 */
export class LabReplicas {
  constructor(
    readonly replicas: readonly LabController[],
    readonly engine: DatabaseEngine,
    /** The database URL or file, as the replicas' config names it (a PostgreSQL URL without its password). */
    readonly database: string,
  ) {}

  get running(): LabController[] {
    return this.replicas.filter((r) => r.running);
  }

  /** Every replica's URL, in replica order (a replica keeps its URL across restarts). */
  urls(): string[] {
    return this.replicas.map((r) => r.url);
  }

  /** The first running replica: what tests ask when it does not matter which one answers. */
  any(): LabController {
    const replica = this.running[0];
    if (!replica) throw new Error('no controller replica is running');
    return replica;
  }

  /** The replica with this URL. */
  byUrl(url: string): LabController {
    const replica = this.replicas.find((r) => r.url === url);
    if (!replica) throw new Error(`no replica has the URL ${url}; replicas: ${this.urls().join(', ')}`);
    return replica;
  }

  name(replica: LabController): string {
    return replica.options.label ?? replica.url;
  }

  /** Whether `replica` holds the engine lease: its shoal_engine_lease_held gauge (controller/src/server.ts sets it from the lease's events). */
  async leaseHeld(replica: LabController): Promise<boolean> {
    if (!replica.running) return false;
    const response = await fetch(`${replica.url}/metrics`);
    if (response.status !== 200) throw new Error(`${this.name(replica)}: GET /metrics answered ${response.status}`);
    const held = sampleValue(parseExposition(await response.text()), LEASE_METRIC);
    if (held === undefined) throw new Error(`${this.name(replica)}: GET /metrics has no ${LEASE_METRIC}`);
    return held === 1;
  }

  /**
   * Waits until exactly one running replica holds the engine lease (and it is not `except`, the
   * one just killed) and returns it. Two holders at once would be a bug, so the wait goes on then.
   */
  async waitForLeaseHolder(options: { except?: LabController; timeoutMs?: number; context?: () => string } = {}): Promise<LabController> {
    let seen = 'nothing yet';
    return waitFor(
      options.except ? `another replica than ${this.name(options.except)} to hold the engine lease` : 'one replica to hold the engine lease',
      async () => {
        const states = await Promise.all(this.running.map(async (r) => [r, await this.leaseHeld(r).catch((error: Error) => error.message)] as const));
        seen = states.map(([r, held]) => `${this.name(r)}: ${held}`).join(', ');
        const holders = states.filter(([, held]) => held === true).map(([r]) => r);
        return holders.length === 1 && holders[0] !== options.except ? holders[0]! : null;
      },
      {
        timeoutMs: options.timeoutMs ?? 30_000,
        intervalMs: 100,
        context: () => `${LEASE_METRIC} per replica: ${seen}${options.context ? `\n${options.context()}` : ''}`,
      },
    );
  }

  /** Agents with an open websocket to `replica` (its shoal_connected_agents). */
  async connectedAgents(replica: LabController): Promise<number> {
    const response = await fetch(`${replica.url}/metrics`);
    if (response.status !== 200) throw new Error(`${this.name(replica)}: GET /metrics answered ${response.status}`);
    return sampleValue(parseExposition(await response.text()), 'shoal_connected_agents') ?? 0;
  }

  /** Last lines of every replica's output, for failure messages. */
  diagnostics(lines = 30): string {
    return this.replicas.map((r) => `--- ${this.name(r)} (${r.running ? 'running' : 'down'})\n${r.output(lines)}`).join('\n');
  }
}
