import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fleet } from './fleet/fleet.js';
import type { ReportResult, VerifyResult } from './fleet/protocol.js';
import type { Cleanup } from './lib/cleanup.js';
import { startControllerProcess, startControllerReplicas, type ControllerProcess } from './lib/controller.js';
import { Operator, fakeStorePath } from './lib/operator.js';
import { startBenchPostgres, type BenchPostgres } from './lib/postgres.js';
import { procStats, sampleRss, type ProcStats } from './lib/proc.js';
import type { Figures } from './lib/results.js';
import { percentile, round, wallMs } from './lib/stats.js';

export const REPORT_PHASES = ['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy'];

/** Where the controller keeps its state: its own SQLite file (the default), or N replicas on one PostgreSQL database. */
export type ScaleDatabase = { engine: 'sqlite' } | { engine: 'postgres'; replicas: number };

/** The figures' prefix: `scale.N` on SQLite (the names the README's tables use), `scale_pgR.N` for R replicas on PostgreSQL. */
export function scalePrefix(count: number, database: ScaleDatabase = { engine: 'sqlite' }): string {
  return database.engine === 'sqlite' ? `scale.${count}` : `scale_pg${database.replicas}.${count}`;
}

export interface ScaleOptions {
  count: number;
  /** Default SQLite. */
  database?: ScaleDatabase;
  /** Extra node flags for the controller, e.g. --cpu-prof. */
  controllerNodeArgs?: string[];
  workers: number;
  cleanup: Cleanup;
  log: (line: string) => void;
}

/** CPU of the controller processes summed (RSS per process), so one replica and several compare as one service. */
function statsOf(controllers: readonly ControllerProcess[]): { cpuSeconds: number; mainThreadCpuSeconds: number; rssMb: number[] } {
  const each: ProcStats[] = controllers.map((c) => procStats(c.pid));
  return {
    cpuSeconds: each.reduce((sum, s) => sum + s.cpuSeconds, 0),
    mainThreadCpuSeconds: each.reduce((sum, s) => sum + s.mainThreadCpuSeconds, 0),
    rssMb: each.map((s) => s.rssMb),
  };
}

/**
 * Fleet scale: N simulated agents enroll, authenticate over websockets, receive one rollout
 * (one release, one 100 % wave) and report six phases each, against a controller process — or
 * against R controller replicas sharing a private PostgreSQL database, host i on replica i mod R,
 * the operator's requests on replica 1.
 */
export async function runScale({ count, workers, cleanup, log, controllerNodeArgs, database = { engine: 'sqlite' } }: ScaleOptions): Promise<Figures> {
  const dir = cleanup.dir(mkdtempSync(join(tmpdir(), `shoal-bench-scale-${count}-`)));
  let postgres: BenchPostgres | null = null;
  let controllers: ControllerProcess[];
  if (database.engine === 'postgres') {
    postgres = await startBenchPostgres(dir, cleanup);
    controllers = await startControllerReplicas(join(dir, 'controller'), cleanup, { replicas: database.replicas, database: postgres, nodeArgs: controllerNodeArgs ?? [] });
  } else {
    controllers = [await startControllerProcess(dir, cleanup, { nodeArgs: controllerNodeArgs ?? [] })];
  }
  const controller = controllers[0]!;
  // Each line cut short: an error line carries its whole stack.
  const tails = () => controllers.map((c, r) => `replica ${r + 1}:\n${c.tail().split("\n").map((line) => line.slice(0, 600)).join("\n")}`).join("\n");
  const op = new Operator(controller.url, controller.adminToken);
  // Each simulated agent connects from a loopback address of its own (127.1.x.y), as a real fleet does: the controller's per-address caps apply to each, not to the whole fleet.
  const fleet = await Fleet.start({
    urls: controllers.map((c) => c.url),
    count,
    workers,
    spreadSources: true,
    trust: { releaseKey: controller.releasePublicKey, controllerKey: controller.controllerPublicKey },
    cleanup,
  });
  const rss = controllers.map((c) => sampleRss(c.pid));
  const pgCpu = () => postgres?.cpuSeconds() ?? 0;
  const p = scalePrefix(count, database);
  const figures: Figures = {};
  // RSS per process: one name on SQLite as before; per replica and the highest on PostgreSQL.
  const rssFigures = (name: string, values: number[]) => {
    if (database.engine === 'sqlite') {
      figures[`${p}.${name}_mb`] = round(values[0]!, 1);
      return;
    }
    values.forEach((value, r) => (figures[`${p}.${name}_r${r + 1}_mb`] = round(value, 1)));
    figures[`${p}.${name}_max_mb`] = round(Math.max(...values), 1);
  };
  try {
    const idle = statsOf(controllers);
    const idlePg = pgCpu();

    const token = await op.enrollmentToken(count);
    let started = wallMs();
    await fleet.all({ cmd: 'enroll', token, concurrency: 16 });
    figures[`${p}.enroll_s`] = round((wallMs() - started) / 1000, 2);
    log(`  ${p}: enrolled in ${figures[`${p}.enroll_s`]} s`);

    const beforeConnect = statsOf(controllers);
    started = wallMs();
    const failed = (await fleet.all<number>({ cmd: 'connect', concurrency: 200 })).reduce((a, b) => a + b, 0);
    if (failed > 0) throw new Error(`${failed} of ${count} simulated agents could not connect:\n${tails()}`);
    figures[`${p}.connect_s`] = round((wallMs() - started) / 1000, 2);
    const afterConnect = statsOf(controllers);
    figures[`${p}.connect_cpu_s`] = round(afterConnect.cpuSeconds - beforeConnect.cpuSeconds, 2);
    log(`  ${p}: connected and authenticated in ${figures[`${p}.connect_s`]} s`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const connected = statsOf(controllers);
    rssFigures('controller_rss', connected.rssMb);
    // What the agents cost in memory over the whole service (every replica's growth), per agent.
    const grown = connected.rssMb.reduce((sum, mb, r) => sum + mb - idle.rssMb[r]!, 0);
    figures[`${p}.rss_per_agent_kb`] = round((grown * 1024) / count, 1);

    const hosts = fleet.names.map((host) => ({ host, storePath: fakeStorePath(`${host}-v2`) }));
    started = wallMs();
    await op.createRelease(`bench-${count}`, hosts);
    figures[`${p}.release_create_ms`] = round(wallMs() - started, 0);
    await fleet.all({ cmd: 'baseline' });
    const beforePush = statsOf(controllers);
    const beforePushPg = pgCpu();
    const pushedAt = wallMs();
    const rollout = await op.startRollout(`bench-${count}`);
    figures[`${p}.rollout_request_ms`] = round(wallMs() - pushedAt, 0);
    const times = await fleet.all<{ receivedAt: number[] }>({ cmd: 'await-manifests', timeoutMs: 180_000 });
    const afterPush = statsOf(controllers);
    figures[`${p}.push_cpu_s`] = round(afterPush.cpuSeconds - beforePush.cpuSeconds, 2);
    figures[`${p}.push_main_thread_cpu_s`] = round(afterPush.mainThreadCpuSeconds - beforePush.mainThreadCpuSeconds, 2);
    if (postgres) figures[`${p}.push_postgres_cpu_s`] = round(pgCpu() - beforePushPg, 2);
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
    figures[`${p}.verify_p50_ms`] = round(percentile(verifyMs, 50), 2);
    figures[`${p}.verify_tweetnacl_p50_ms`] = round(percentile(verified.flatMap((v) => v.tweetnaclMs), 50), 1);
    log(`  ${p}: pushed; p99 ${figures[`${p}.push_p99_ms`]} ms (rollout request ${figures[`${p}.rollout_request_ms`]} ms)`);

    const beforeReports = statsOf(controllers);
    const beforeReportsPg = pgCpu();
    const reports = await fleet.all<ReportResult>({ cmd: 'report', phases: REPORT_PHASES, concurrency: 64 });
    const afterReports = statsOf(controllers);
    const errors = reports.flatMap((r) => r.errors);
    if (errors.length > 0) throw new Error(`reports refused: ${errors.join('; ')}`);
    const stored = reports.reduce((sum, r) => sum + r.stored, 0);
    if (stored !== count * REPORT_PHASES.length) throw new Error(`${stored} reports stored, expected ${count * REPORT_PHASES.length}`);
    const elapsed = Math.max(...reports.map((r) => r.finishedAt)) - Math.min(...reports.map((r) => r.startedAt));
    figures[`${p}.report_ingest_per_s`] = round((stored / elapsed) * 1000, 0);
    figures[`${p}.report_cpu_s`] = round(afterReports.cpuSeconds - beforeReports.cpuSeconds, 2);
    if (postgres) figures[`${p}.report_postgres_cpu_s`] = round(pgCpu() - beforeReportsPg, 2);
    log(`  ${p}: ${stored} reports in ${round(elapsed / 1000, 2)} s`);

    // Report-driven ticks run at most every 25 ms per rollout: the last report's may still be due.
    let status = await op.request<{ state: string }>('GET', `/v1/rollouts/${rollout.id}`);
    for (let attempt = 0; attempt < 50 && status.state === 'running'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      status = await op.request<{ state: string }>('GET', `/v1/rollouts/${rollout.id}`);
    }
    if (status.state !== 'succeeded') log(`  ${p}: rollout ${rollout.id} is ${status.state}, expected succeeded`);
    const end = statsOf(controllers);
    rssFigures('controller_peak_rss', rss.map((sampler) => sampler.peak()));
    figures[`${p}.controller_cpu_s`] = round(end.cpuSeconds - idle.cpuSeconds, 2);
    if (postgres) figures[`${p}.postgres_cpu_s`] = round(pgCpu() - idlePg, 2);
    return figures;
  } catch (error) {
    // The controllers' last log lines say why; their directories are gone after the cleanup.
    throw new Error(`${(error as Error).message}\n${tails()}`, { cause: error });
  } finally {
    for (const sampler of rss) sampler.stop();
    await fleet.close();
    await Promise.all(controllers.map((c) => c.stop()));
    await postgres?.stop();
  }
}
