import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostEvent } from '../../shared/src/operator-api.js';
import type { Phase, Report, ReportDetail } from '../../shared/src/protocol.js';
import type { LabController } from '../lab/controller.js';
import type { LabHost } from '../lab/host.js';
import { childPids } from '../lab/pids.js';
import { waitFor } from '../lab/wait.js';

/** One stored agent report as the controller's event log shows it. */
export interface ReportEvent {
  eventId: number;
  seq: number;
  phase: Phase;
  manifestVersion: number | null;
  storePath: string | null;
  currentSystem: string | null;
  /** When the agent made the report (epoch ms). */
  reportedAt: number;
  /** When the controller stored it (epoch ms). */
  storedAt: number;
  detail: ReportDetail;
}

export function reportEvents(events: readonly HostEvent[]): ReportEvent[] {
  return events
    .filter((e) => e.kind === 'report')
    .map((e) => ({
      eventId: e.id,
      seq: e.data.seq as number,
      phase: e.data.phase as Phase,
      manifestVersion: (e.data.manifestVersion as number | null) ?? null,
      storePath: (e.data.storePath as string | null) ?? null,
      currentSystem: (e.data.currentSystem as string | null) ?? null,
      reportedAt: Date.parse(String(e.data.reportedAt)),
      storedAt: Date.parse(e.at),
      detail: (e.data.detail ?? {}) as ReportDetail,
    }));
}

/** The phases the host reported about one manifest version, in the order the controller stored them. */
export function phasesOf(events: readonly HostEvent[], version: number): Phase[] {
  return reportEvents(events)
    .filter((r) => r.manifestVersion === version)
    .map((r) => r.phase);
}

/** The three places a NixOS host's system is recorded: what runs, the profile, the boot default. */
export function systemOf(host: LabHost): { current: string | null; profile: string | null; bootDefault: string | null } {
  return { current: host.currentSystem(), profile: host.profileSystem(), bootDefault: host.bootDefault() };
}

/** Every process below `pid` (children, grandchildren, …). */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of childPids(queue.shift()!)) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Waits until the host's event log has a report after `afterEventId` that `match` accepts. */
export function waitForReport(
  controller: LabController,
  host: string,
  what: string,
  match: (report: ReportEvent) => boolean,
  options: { afterEventId?: number; timeoutMs?: number; context?: () => string } = {},
): Promise<ReportEvent> {
  return waitFor(
    `${host}: ${what}`,
    async () => reportEvents(await controller.client.events(host)).find((r) => r.eventId > (options.afterEventId ?? 0) && match(r)),
    { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 200, context: options.context },
  );
}

/** The id of the newest event in the host's log (0 when it has none): a marker for "after this". */
export async function lastEventId(controller: LabController, host: string): Promise<number> {
  const events = await controller.client.events(host);
  return events.at(-1)?.id ?? 0;
}

/**
 * The hosts' reboot grants and releases from their event logs, in order: `most` is the largest
 * number of hosts that held a reboot lease at once, `holding` how many still hold one at the end.
 */
export async function rebootLockTimeline(controller: LabController, hosts: readonly string[]): Promise<{ events: HostEvent[]; most: number; holding: number }> {
  const events = (await Promise.all(hosts.map((n) => controller.client.events(n)))).flat().sort((a, b) => a.id - b.id);
  let holding = 0;
  let most = 0;
  for (const event of events) {
    if (event.kind === 'reboot-granted') holding += 1;
    if (event.kind === 'reboot-released') holding -= 1;
    most = Math.max(most, holding);
  }
  return { events, most, holding };
}

/** A health check that passes once the test creates /run/lab/release-gate in the host: it holds a deployment in its gate. */
export const GATE_CHECK = {
  name: 'release-gate',
  command: ['/bin/sh', '-c', '[ -e /run/lab/release-gate ] || { echo "release gate closed" >&2; exit 1; }'],
  timeoutMs: 5_000,
};

/** The reports waiting in a host's outbox (none before its first). */
export function outboxReports(host: LabHost): Report[] {
  const dir = join(host.paths.state, 'outbox');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /^\d+\.json$/.test(name))
    .map((name) => JSON.parse(readFileSync(join(dir, name), 'utf8')) as Report);
}

/** The sequence number the host's next report gets. */
export function nextSeq(host: LabHost): number {
  return Number(readFileSync(join(host.paths.state, 'outbox', 'next-seq'), 'utf8').trim());
}
