import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet } from './fleet/fleet.js';
import type { ReportResult, VerifyResult } from './fleet/protocol.js';
import type { Cleanup } from './lib/cleanup.js';
import { startControllerProcess } from './lib/controller.js';
import { Operator, fakeStorePath } from './lib/operator.js';
import { procStats, sampleRss } from './lib/proc.js';
import type { Figures } from './lib/results.js';
import { percentile, round, wallMs } from './lib/stats.js';

export const REPORT_PHASES = ['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy'];

export interface ScaleOptions {
  count: number;
  /** Extra node flags for the controller, e.g. --cpu-prof. */
  controllerNodeArgs?: string[];
  workers: number;
  cleanup: Cleanup;
  log: (line: string) => void;
}

/**
 * Fleet scale: N simulated agents enroll, authenticate over websockets, receive one rollout
 * (one release, one 100 % wave) and report six phases each, against a controller process.
 */
export async function runScale({ count, workers, cleanup, log, controllerNodeArgs }: ScaleOptions): Promise<Figures> {
  const dir = cleanup.dir(mkdtempSync(join(tmpdir(), `shoal-bench-scale-${count}-`)));
  const controller = await startControllerProcess(dir, cleanup, { nodeArgs: controllerNodeArgs ?? [] });
  const op = new Operator(controller.url, controller.adminToken);
  // Each simulated agent connects from a loopback address of its own (127.1.x.y), as a real fleet does: the controller's per-address caps apply to each, not to the whole fleet.
  const fleet = await Fleet.start({ url: controller.url, count, workers, spreadSources: true, trust: { releaseKey: controller.releasePublicKey, controllerKey: controller.controllerPublicKey }, cleanup });
  const rss = sampleRss(controller.pid);
  const p = `scale.${count}`;
  const figures: Figures = {};
  try {
    const idle = procStats(controller.pid);

    const token = await op.enrollmentToken(count);
    let started = wallMs();
    await fleet.all({ cmd: 'enroll', token, concurrency: 16 });
    figures[`${p}.enroll_s`] = round((wallMs() - started) / 1000, 2);
    log(`  ${count}: enrolled in ${figures[`${p}.enroll_s`]} s`);

    const beforeConnect = procStats(controller.pid);
    started = wallMs();
    const failed = (await fleet.all<number>({ cmd: 'connect', concurrency: 200 })).reduce((a, b) => a + b, 0);
    if (failed > 0) throw new Error(`${failed} of ${count} simulated agents could not connect:\n${controller.tail()}`);
    figures[`${p}.connect_s`] = round((wallMs() - started) / 1000, 2);
    const afterConnect = procStats(controller.pid);
    figures[`${p}.connect_cpu_s`] = round(afterConnect.cpuSeconds - beforeConnect.cpuSeconds, 2);
    log(`  ${count}: connected and authenticated in ${figures[`${p}.connect_s`]} s`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const connected = procStats(controller.pid);
    figures[`${p}.controller_rss_mb`] = round(connected.rssMb, 1);
    figures[`${p}.rss_per_agent_kb`] = round(((connected.rssMb - idle.rssMb) * 1024) / count, 1);

    const hosts = fleet.names.map((host) => ({ host, storePath: fakeStorePath(`${host}-v2`) }));
    started = wallMs();
    await op.createRelease(`bench-${count}`, hosts);
    figures[`${p}.release_create_ms`] = round(wallMs() - started, 0);
    await fleet.all({ cmd: 'baseline' });
    const beforePush = procStats(controller.pid);
    const pushedAt = wallMs();
    const rollout = await op.startRollout(`bench-${count}`);
    figures[`${p}.rollout_request_ms`] = round(wallMs() - pushedAt, 0);
    const times = await fleet.all<{ receivedAt: number[] }>({ cmd: 'await-manifests', timeoutMs: 180_000 });
    const afterPush = procStats(controller.pid);
    figures[`${p}.push_cpu_s`] = round(afterPush.cpuSeconds - beforePush.cpuSeconds, 2);
    figures[`${p}.push_main_thread_cpu_s`] = round(afterPush.mainThreadCpuSeconds - beforePush.mainThreadCpuSeconds, 2);
    const verified = await fleet.all<VerifyResult>({ cmd: 'verify' });
    const invalid = verified.flatMap((v) => v.invalid);
    if (invalid.length > 0) throw new Error(`${invalid.length} manifests did not verify: ${invalid.slice(0, 5).join('; ')}`);
    const received = times.flatMap((t) => t.receivedAt.map((at) => at - pushedAt));
    const verifyMs = verified.flatMap((v) => v.verifyMs);
    // Each host verifies on a CPU of its own: its latency is its arrival plus its own verification.
    const latency = received.map((ms, i) => ms + verifyMs[i]!);
    figures[`${p}.push_p50_ms`] = round(percentile(latency, 50), 0);
    figures[`${p}.push_p99_ms`] = round(percentile(latency, 99), 0);
    figures[`${p}.push_max_ms`] = round(Math.max(...latency), 0);
    figures[`${p}.push_received_p99_ms`] = round(percentile(received, 99), 0);
    figures[`${p}.verify_tweetnacl_p50_ms`] = round(percentile(verifyMs, 50), 1);
    log(`  ${count}: pushed; p99 ${figures[`${p}.push_p99_ms`]} ms (rollout request ${figures[`${p}.rollout_request_ms`]} ms)`);

    const beforeReports = procStats(controller.pid);
    const reports = await fleet.all<ReportResult>({ cmd: 'report', phases: REPORT_PHASES, concurrency: 64 });
    const afterReports = procStats(controller.pid);
    const errors = reports.flatMap((r) => r.errors);
    if (errors.length > 0) throw new Error(`reports refused: ${errors.join('; ')}`);
    const stored = reports.reduce((sum, r) => sum + r.stored, 0);
    if (stored !== count * REPORT_PHASES.length) throw new Error(`${stored} reports stored, expected ${count * REPORT_PHASES.length}`);
    const elapsed = Math.max(...reports.map((r) => r.finishedAt)) - Math.min(...reports.map((r) => r.startedAt));
    figures[`${p}.report_ingest_per_s`] = round((stored / elapsed) * 1000, 0);
    figures[`${p}.report_cpu_s`] = round(afterReports.cpuSeconds - beforeReports.cpuSeconds, 2);
    log(`  ${count}: ${stored} reports in ${round(elapsed / 1000, 2)} s`);

    // Report-driven ticks run at most every 25 ms per rollout: the last report's may still be due.
    let status = await op.request<{ state: string }>('GET', `/v1/rollouts/${rollout.id}`);
    for (let attempt = 0; attempt < 50 && status.state === 'running'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      status = await op.request<{ state: string }>('GET', `/v1/rollouts/${rollout.id}`);
    }
    if (status.state !== 'succeeded') log(`  ${count}: rollout ${rollout.id} is ${status.state}, expected succeeded`);
    const end = procStats(controller.pid);
    figures[`${p}.controller_peak_rss_mb`] = round(rss.peak(), 1);
    figures[`${p}.controller_cpu_s`] = round(end.cpuSeconds - idle.cpuSeconds, 2);
    return figures;
  } finally {
    rss.stop();
    await fleet.close();
    await controller.stop();
  }
}
