import { readlink } from 'node:fs/promises';
import type { Logger } from '../../shared/src/logger.js';
import { DEPLOYMENT_SUCCESS_PHASES } from '../../shared/src/phases.js';
import type { AgentState } from './state.js';
import { writeFileAtomic } from './durable-file.js';
import { resolveSystem } from './system.js';

/**
 * The agent's metrics as a node-exporter textfile (`--collector.textfile.directory`): no port to
 * open on the host, and node-exporter already runs there. Rewritten atomically on an interval,
 * so node-exporter never reads a torn file.
 */

export interface AgentMetricsSnapshot {
  host: string;
  state: Readonly<AgentState>;
  currentSystem: string | null;
  /** The number N of the profile's system-N-link, when it has one. */
  generation: number | null;
  /** Milliseconds since the epoch of the last answer from the controller; null: none since start. */
  lastContactMs: number | null;
  nowMs: number;
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function family(lines: string[], name: string, type: 'gauge', help: string, samples: Array<[string, number]>): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) lines.push(`${name}${labels} ${Number.isFinite(value) ? value : 'NaN'}`);
}

export function renderAgentMetrics(s: AgentMetricsSnapshot): string {
  const lines: string[] = [];
  const host = `host="${label(s.host)}"`;
  const last = s.state.lastResult;
  family(lines, 'shoal_agent_last_deployment_success', 'gauge', 'Whether the last deployment ended healthy (1) or not (0); absent before the first.', last ? [[`{${host},phase="${label(last.phase)}"}`, DEPLOYMENT_SUCCESS_PHASES.has(last.phase) ? 1 : 0]] : []);
  family(lines, 'shoal_agent_last_deployment_version', 'gauge', 'Manifest version of the last finished deployment.', last ? [[`{${host}}`, last.manifestVersion]] : []);
  family(lines, 'shoal_agent_last_deployment_timestamp_seconds', 'gauge', 'When the last deployment finished.', last ? [[`{${host}}`, Date.parse(last.at) / 1000]] : []);
  family(lines, 'shoal_agent_highest_accepted_version', 'gauge', 'Highest manifest version this host accepted.', [[`{${host}}`, s.state.highestVersion]]);
  family(lines, 'shoal_agent_highest_accepted_floor', 'gauge', 'Highest release-statement security floor this host accepted.', [[`{${host}}`, s.state.highestFloor]]);
  family(lines, 'shoal_agent_state_lost', 'gauge', 'Whether the agent refuses every manifest until `shoal-agent rebootstrap` (1) or not (0).', [[`{${host}}`, s.state.stateLost ? 1 : 0]]);
  family(lines, 'shoal_agent_current_generation', 'gauge', 'Number of the system profile generation the profile points to.', s.generation === null ? [] : [[`{${host}}`, s.generation]]);
  family(lines, 'shoal_agent_current_system_info', 'gauge', 'The system the host runs now (store path of /run/current-system).', s.currentSystem === null ? [] : [[`{${host},store_path="${label(s.currentSystem)}"}`, 1]]);
  family(lines, 'shoal_agent_activation_in_progress', 'gauge', 'Whether an activation is in flight (1) or not (0).', [[`{${host}}`, s.state.activation ? 1 : 0]]);
  if (s.lastContactMs !== null) {
    family(lines, 'shoal_agent_last_contact_timestamp_seconds', 'gauge', 'When the controller last answered (or the websocket was last open).', [[`{${host}}`, s.lastContactMs / 1000]]);
    family(lines, 'shoal_agent_seconds_since_last_contact', 'gauge', 'Seconds since the controller last answered, when this file was written.', [[`{${host}}`, Math.max(0, s.nowMs - s.lastContactMs) / 1000]]);
  }
  return `${lines.join('\n')}\n`;
}

export async function profileGeneration(profile: string): Promise<number | null> {
  try {
    const match = /-(\d+)-link$/.exec(await readlink(profile));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

export interface TextfileOptions {
  file: string;
  host: string;
  intervalMs: number;
  state: () => Readonly<AgentState>;
  paths: { currentSystem: string; profile: string };
  lastContactMs: () => number | null;
  logger: Logger;
  now?: () => number;
}

export class TextfileExporter {
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly options: TextfileOptions) {}

  start(): void {
    void this.writeNow();
    this.timer = setInterval(() => void this.writeNow(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Writes one snapshot; writes never overlap, and a failure is logged, not thrown (metrics must not stop the agent). */
  writeNow(): Promise<void> {
    const o = this.options;
    this.writing = this.writing.then(async () => {
      try {
        const text = renderAgentMetrics({
          host: o.host,
          state: o.state(),
          currentSystem: await resolveSystem(o.paths.currentSystem),
          generation: await profileGeneration(o.paths.profile),
          lastContactMs: o.lastContactMs(),
          nowMs: (o.now ?? Date.now)(),
        });
        // 0644: node-exporter usually runs as its own user.
        await writeFileAtomic(o.file, text, 0o644);
      } catch (error) {
        o.logger.warn({ err: error, file: o.file }, 'cannot write the metrics textfile');
      }
    });
    return this.writing;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.writeNow();
  }
}
