import { Cleanup } from './lib/cleanup.js';
import { mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { RESULTS_FILE, formatTable, saveFigures, type Figures } from './lib/results.js';
import { runAgentIdle } from './agent.js';
import { runDeploy } from './deploy.js';
import { runPoll } from './poll.js';
import { runPreflightBench } from './preflight.js';
import { runReleaseSign } from './release-sign.js';
import { runScale, scalePrefix, type ScaleDatabase } from './scale.js';
import { runSoak } from './soak.js';
import { runAdmission } from './admission.js';
import { controllerOpenFilesLimit } from './lib/spawn.js';

const TARGETS: Record<string, string> = {
  'scale.10000.controller_rss_mb': '≤ 300',
  'scale.10000.push_p99_ms': '≤ 1000',
  'scale.25000.push_p99_ms': '≤ 2000',
  'poll.unchanged_rps': '≥ 10000',
  'deploy.overhead_ratio': '≤ 1.05 (or ≤ 250 ms)',
  'agent.idle_rss_mb': '≤ 50',
  'agent.deploy_peak_rss_mb': '≤ 80',
  'agent.idle_cpu_pct': '≈ 0',
  'release_sign.10000.cli_s': 'seconds, not minutes',
  'preflight.1000.cold_ms': '< 5000',
};

type Bench = 'scale' | 'poll' | 'deploy' | 'agent' | 'release-sign' | 'soak' | 'admission' | 'preflight';
const ALL: Bench[] = ['scale', 'poll', 'deploy', 'agent', 'release-sign', 'soak', 'admission', 'preflight'];

interface Options {
  quick: boolean;
  benches: Bench[];
  sizes: number[] | null;
  profile: boolean;
  /** The scale benchmark's databases, one run each per size: SQLite, or PostgreSQL with each replica count given. */
  databases: ScaleDatabase[];
}

const USAGE = `usage: bench/run.ts [--quick] [--sizes 1000,5000] [--profile] [--database sqlite|postgres [--replicas 1,2]] [${ALL.join('|')}...]`;

function positiveIntegers(flag: string, text: string | undefined): number[] {
  const values = (text ?? '').split(',').map(Number);
  if (text === undefined || values.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`${flag} takes positive integers separated by commas, got ${JSON.stringify(text ?? '')}; ${USAGE}`);
  return values;
}

function parse(argv: string[]): Options {
  let quick = false;
  let profile = false;
  let sizes: number[] | null = null;
  let engine: 'sqlite' | 'postgres' = 'sqlite';
  let replicas: number[] | null = null;
  const benches: Bench[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') quick = true;
    else if (arg === '--profile') profile = true;
    else if (arg === '--sizes') sizes = positiveIntegers('--sizes', argv[++i]);
    else if (arg === '--database') {
      const value = argv[++i];
      if (value !== 'sqlite' && value !== 'postgres') throw new Error(`--database is sqlite or postgres, got ${JSON.stringify(value ?? '')}; ${USAGE}`);
      engine = value;
    } else if (arg === '--replicas') replicas = positiveIntegers('--replicas', argv[++i]);
    else if ((ALL as string[]).includes(arg)) benches.push(arg as Bench);
    else throw new Error(`unknown argument ${JSON.stringify(arg)}; ${USAGE}`);
  }
  if (engine === 'sqlite' && replicas !== null) throw new Error(`--replicas needs --database postgres (replicas share a PostgreSQL database; SQLite is one controller); ${USAGE}`);
  const databases: ScaleDatabase[] = engine === 'sqlite' ? [{ engine }] : (replicas ?? [1, 2]).map((count) => ({ engine, replicas: count }));
  return { quick, benches: benches.length > 0 ? benches : ALL, sizes, profile, databases };
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2));
  // Other work on this machine skews every figure; the load average goes into the results.
  const figuresAtStart: Figures = { 'machine.loadavg_1m_at_start': Number(loadavg()[0]!.toFixed(2)), 'machine.cpus': cpus().length };
  const cleanup = new Cleanup();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const figures: Figures = { ...figuresAtStart };
  saveFigures(figuresAtStart);
  const targets = { ...TARGETS };
  // Profiles of the controller process land next to the results (node writes them when it exits).
  const controllerNodeArgs = options.profile ? ['--cpu-prof', '--cpu-prof-dir', join(dirname(RESULTS_FILE), 'profiles')] : [];
  try {
    for (const bench of options.benches) {
      const started = Date.now();
      log(`bench ${bench}${options.quick ? ' (quick)' : ''}`);
      let result: Figures = {};
      if (bench === 'scale') {
        const sizes = options.sizes ?? (options.quick ? [1000] : [1000, 5000, 10_000, 25_000]);
        const openFiles = controllerOpenFilesLimit();
        for (const database of options.databases) {
          for (const count of sizes) {
            // Each agent's websocket is a descriptor of the replica it landed on (agents are spread
            // evenly); a few thousand more for the database, the HTTP server and reconnects in flight.
            const perController = Math.ceil(count / (database.engine === 'postgres' ? database.replicas : 1)) + 2_000;
            if (perController > openFiles) {
              log(`  ${count}: skipped: each controller would need ${perController} open files, and this machine's hard limit is ${openFiles} (raise it with \`ulimit -Hn\` as root, or in the container's settings; or spread the fleet over PostgreSQL replicas: --database postgres --replicas 2)`);
              figures[`${scalePrefix(count, database)}.skipped_open_files_limit`] = openFiles;
              continue;
            }
            Object.assign(result, await runScale({ count, workers: 2, cleanup, log, controllerNodeArgs, database }));
            if (count <= 10_000 && database.engine === 'sqlite') targets[`scale.${count}.report_ingest_per_s`] = '≥ 5000';
            // Issue 16: PostgreSQL within 1.5× of SQLite on one replica; two replicas each below one SQLite controller.
            if (database.engine === 'postgres' && database.replicas === 1) {
              targets[`scale_pg1.${count}.push_p99_ms`] = `≤ 1.5 × scale.${count}.push_p99_ms`;
              targets[`scale_pg1.${count}.report_ingest_per_s`] = `≥ scale.${count}.report_ingest_per_s / 1.5`;
            }
            if (database.engine === 'postgres' && database.replicas === 2) targets[`scale_pg2.${count}.controller_rss_max_mb`] = `< scale.${count}.controller_rss_mb`;
          }
        }
      }
      if (bench === 'poll') {
        result = await runPoll({ hosts: options.quick ? 400 : 1000, workers: 2, connectionsPerWorker: 50, durationMs: options.quick ? 3000 : 10_000, cleanup, log, controllerNodeArgs });
      }
      if (bench === 'deploy') result = await runDeploy({ workDir: cleanup.dir(mkdtempSync(join(tmpdir(), 'shoal-bench-deploy-'))), log });
      if (bench === 'release-sign') {
        for (const hosts of options.sizes ?? [10_000]) Object.assign(result, await runReleaseSign({ hosts, cleanup, log }));
      }
      if (bench === 'preflight') {
        for (const hosts of options.sizes ?? [1000]) {
          Object.assign(result, await runPreflightBench({ workDir: cleanup.dir(mkdtempSync(join(tmpdir(), 'shoal-bench-preflight-'))), hosts, log }));
        }
      }
      if (bench === 'soak') {
        for (const hosts of options.sizes ?? [options.quick ? 200 : 1000]) Object.assign(result, await runSoak({ hosts, days: 30, deploysPerDay: 1, cleanup, log }));
      }
      if (bench === 'admission') {
        for (const count of options.sizes ?? [options.quick ? 1000 : 10_000]) Object.assign(result, await runAdmission({ count, workers: 2, cleanup, log }));
      }
      if (bench === 'agent') result = await runAgentIdle({ idleMs: options.quick ? 15_000 : 60_000, cleanup, log });
      Object.assign(figures, result);
      saveFigures(result);
      log(`bench ${bench}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  } finally {
    await cleanup.release();
    cleanup.dispose();
  }
  process.stdout.write(`${formatTable(figures, targets)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
