import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cleanup } from './lib/cleanup.js';
import { startControllerProcess } from './lib/controller.js';
import { Operator } from './lib/operator.js';
import { cpuPercent, procStats, sampleRss } from './lib/proc.js';
import type { Figures } from './lib/results.js';
import { round } from './lib/stats.js';
import { REPO_ROOT, spawnTs } from './lib/spawn.js';

export interface AgentOptions {
  idleMs: number;
  cleanup: Cleanup;
  log: (line: string) => void;
}

/**
 * A real agent (`agent/src/main.ts run`) enrolled and connected over the websocket with nothing to
 * do: its RSS after start-up settled and its CPU over the idle window. Its paths point into a temp
 * dir, and it gets no desired state, so it touches nothing on this machine.
 */
export async function runAgentIdle({ idleMs, cleanup, log }: AgentOptions): Promise<Figures> {
  const dir = cleanup.dir(mkdtempSync(join(tmpdir(), 'shoal-bench-agent-')));
  const controller = await startControllerProcess(join(dir, 'controller'), cleanup);
  const op = new Operator(controller.url, controller.adminToken);
  const stateDir = join(dir, 'agent-state');
  mkdirSync(stateDir, { mode: 0o700 });
  writeFileSync(join(dir, 'enroll-token'), await op.enrollmentToken(1), { mode: 0o600 });
  const config = {
    host: 'bench-idle-1',
    controllerUrl: controller.url,
    trustedReleaseKeys: [controller.releasePublicKey],
    stateDir,
    enrollmentTokenFile: join(dir, 'enroll-token'),
    websocket: true,
    checkSystemdUnits: false,
    useSystemdRun: false,
    paths: { profile: join(dir, 'profile'), currentSystem: join(dir, 'current-system'), bootedSystem: join(dir, 'booted-system') },
    logLevel: 'warn',
  };
  writeFileSync(join(dir, 'agent.json'), JSON.stringify(config, null, 2));
  const agent = cleanup.child(spawnTs(join(REPO_ROOT, 'agent/src/main.ts'), ['run', '--config', join(dir, 'agent.json')], { stdio: ['ignore', 'ignore', 'inherit'] }));
  try {
    // Connected = the controller lists it as a websocket host.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = await op.request<{ connection: string }>('GET', '/v1/hosts/bench-idle-1').catch(() => null);
      if (status?.connection === 'websocket') break;
      if (Date.now() > deadline) throw new Error('the agent did not connect within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // Let start-up garbage settle (module loading, enrollment) before the idle window.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const rss = sampleRss(agent.pid!, 500);
    const before = procStats(agent.pid!);
    const started = Date.now();
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    const after = procStats(agent.pid!);
    rss.stop();
    log(`  idle ${idleMs / 1000} s: RSS ${round(after.rssMb, 1)} MB, CPU ${round(after.cpuSeconds - before.cpuSeconds, 2)} s`);
    return {
      'agent.idle_rss_mb': round(after.rssMb, 1),
      'agent.idle_peak_rss_mb': round(rss.peak(), 1),
      'agent.idle_cpu_pct': round(cpuPercent(before, after, Date.now() - started), 2),
      'agent.idle_window_s': idleMs / 1000,
    };
  } finally {
    agent.kill('SIGTERM');
    await controller.stop();
  }
}
