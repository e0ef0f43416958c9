import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet } from './fleet/fleet.js';
import type { PollResult, ReportResult } from './fleet/protocol.js';
import type { Cleanup } from './lib/cleanup.js';
import { startControllerProcess } from './lib/controller.js';
import { Operator, fakeStorePath } from './lib/operator.js';
import { cpuPercent, procStats } from './lib/proc.js';
import type { Figures } from './lib/results.js';
import { percentile, round, wallMs } from './lib/stats.js';
import { REPORT_PHASES } from './scale.js';

export interface PollOptions {
  hosts: number;
  /** Keep-alive connections per load-generator process, one request in flight each. */
  connectionsPerWorker: number;
  workers: number;
  durationMs: number;
  cleanup: Cleanup;
  log: (line: string) => void;
  /** Node flags for the controller process (--profile: its CPU profile). */
  controllerNodeArgs?: string[];
}

function summarise(results: PollResult[]): { rps: number; p50: number; p99: number; statuses: Record<string, number>; errors: string[] } {
  const requests = results.reduce((sum, r) => sum + r.requests, 0);
  const elapsed = Math.max(...results.map((r) => r.elapsedMs));
  const latencies = results.flatMap((r) => r.latenciesMs);
  const statuses: Record<string, number> = {};
  for (const r of results) for (const [status, n] of Object.entries(r.byStatus)) statuses[status] = (statuses[status] ?? 0) + n;
  return { rps: (requests / elapsed) * 1000, p50: percentile(latencies, 50), p99: percentile(latencies, 99), statuses, errors: results.flatMap((r) => r.errors) };
}

/**
 * Unchanged polls: hosts that hold their desired manifest ask again with If-None-Match (answer 304),
 * first on a quiet controller, then while a rollout deploys to another half of the fleet (manifests
 * pushed, six reports per host).
 */
export async function runPoll(options: PollOptions): Promise<Figures> {
  const { cleanup, log } = options;
  const dir = cleanup.dir(mkdtempSync(join(tmpdir(), 'shoal-bench-poll-')));
  const controller = await startControllerProcess(dir, cleanup, { nodeArgs: options.controllerNodeArgs ?? [] });
  const op = new Operator(controller.url, controller.adminToken);
  const fleet = await Fleet.start({ urls: [controller.url], count: options.hosts, workers: options.workers, spreadSources: true, trust: { releaseKey: controller.releasePublicKey, controllerKey: controller.controllerPublicKey }, prefix: 'poll', cleanup });
  const figures: Figures = {};
  try {
    await fleet.all({ cmd: 'enroll', token: await op.enrollmentToken(options.hosts), concurrency: 16 });
    await fleet.all({ cmd: 'connect', concurrency: 200 });
    // Everyone gets a desired state first, so a poll with the held ETag is "unchanged" (304).
    await fleet.all({ cmd: 'baseline' });
    await op.createRelease('poll-v2', fleet.names.map((host) => ({ host, storePath: fakeStorePath(`${host}-v2`) })));
    const first = await op.startRollout('poll-v2');
    await fleet.all({ cmd: 'await-manifests', timeoutMs: 120_000 });
    await fleet.all({ cmd: 'report', phases: ['healthy'], concurrency: 32 });
    await waitForRollout(op, first.id);

    // Each worker polls with its first half of hosts; the second half takes the rollout in phase two.
    const pollHosts = Math.floor(options.hosts / options.workers / 2);
    const poll = () => fleet.all<PollResult>({ cmd: 'poll', durationMs: options.durationMs, connections: options.connectionsPerWorker, hostCount: pollHosts, waitForStart: wallMs() + 200 });

    let before = procStats(controller.pid);
    let started = wallMs();
    const quiet = summarise(await poll());
    figures['poll.controller_cpu_pct'] = round(cpuPercent(before, procStats(controller.pid), wallMs() - started), 0);
    checkStatuses(quiet.statuses, quiet.errors);
    figures['poll.unchanged_rps'] = round(quiet.rps, 0);
    figures['poll.p50_ms'] = round(quiet.p50, 2);
    figures['poll.p99_ms'] = round(quiet.p99, 2);
    log(`  quiet: ${figures['poll.unchanged_rps']} polls/s, p99 ${figures['poll.p99_ms']} ms`);

    const rolling = fleet.slice(0).slice(pollHosts).concat(...fleet.workers.slice(1).map((_, w) => fleet.slice(w + 1).slice(pollHosts)));
    await op.createRelease('poll-v3', rolling.map((host) => ({ host, storePath: fakeStorePath(`${host}-v3`) })));
    await fleet.all({ cmd: 'baseline' });
    before = procStats(controller.pid);
    started = wallMs();
    const polling = poll();
    polling.catch(() => undefined); // awaited below; a failure in between must not become unhandled
    await new Promise((resolve) => setTimeout(resolve, 400));
    const rollout = await op.startRollout('poll-v3', rolling);
    await fleet.all({ cmd: 'await-manifests', timeoutMs: 120_000, skip: pollHosts });
    const reports = await fleet.all<ReportResult>({ cmd: 'report', phases: REPORT_PHASES, concurrency: 16, skip: pollHosts });
    const reportsDoneAt = Math.max(...reports.map((r) => r.finishedAt));
    const busy = summarise(await polling);
    figures['poll.during_rollout_controller_cpu_pct'] = round(cpuPercent(before, procStats(controller.pid), wallMs() - started), 0);
    checkStatuses(busy.statuses, busy.errors);
    figures['poll.during_rollout_rps'] = round(busy.rps, 0);
    figures['poll.during_rollout_p99_ms'] = round(busy.p99, 2);
    figures['poll.during_rollout_reports'] = reports.reduce((sum, r) => sum + r.stored, 0);
    if (reportsDoneAt > started + options.durationMs + 200) log(`  note: the rollout's reports outlasted the polling window by ${round((reportsDoneAt - started - options.durationMs) / 1000, 1)} s`);
    log(`  during rollout ${rollout.id}: ${figures['poll.during_rollout_rps']} polls/s, p99 ${figures['poll.during_rollout_p99_ms']} ms`);
    return figures;
  } finally {
    await fleet.close();
    await controller.stop();
  }
}

function checkStatuses(statuses: Record<string, number>, errors: string[]): void {
  const other = Object.entries(statuses).filter(([status]) => status !== '304');
  if (other.length > 0 || errors.length > 0) {
    throw new Error(`unchanged polls should all answer 304; got ${JSON.stringify(statuses)}${errors.length ? `, errors: ${errors.join('; ')}` : ''}`);
  }
}

async function waitForRollout(op: Operator, id: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { state } = await op.request<{ state: string }>('GET', `/v1/rollouts/${id}`);
    if (state === 'succeeded') return;
    if (Date.now() > deadline) throw new Error(`rollout ${id} is still ${state} after 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
