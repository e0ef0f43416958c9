import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateCacheKey, publishToCache } from '../test/lab/binary-cache.js';
import { Lab } from '../test/lab/lab.js';
import { REALISTIC_FILLER, buildSystems } from '../test/lab/systems.js';
import { procStats } from './lib/proc.js';
import type { Figures } from './lib/results.js';
import { round, wallMs } from './lib/stats.js';

/** The agent's node process (the bundle) inside a lab host: a descendant of the host's namespace wrapper. */
function findAgentPid(root: number): number | null {
  const children = (pid: number): number[] => {
    try {
      return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
        readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
      );
    } catch {
      return [];
    }
  };
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('shoal-agent.mjs') && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node') return pid;
    } catch {
      continue;
    }
    queue.push(...children(pid));
  }
  return null;
}

/**
 * Deploy overhead on the fleet lab: one realistic closure (300 paths, 30 MB) from the same cache
 * into two fresh hosts. By hand on one (nix-store --realise, nix-env --set, switch-to-configuration
 * test and boot); through Shoal on the other (desired set → healthy report stored).
 */
export async function runDeploy({ workDir, log }: { workDir: string; log: (line: string) => void }): Promise<Figures> {
  const systems = await buildSystems(
    [{ name: 'bench-base' }, { name: 'bench-realistic', filler: REALISTIC_FILLER }],
    join(workDir, 'systems'),
  );
  const key = await generateCacheKey(join(workDir, 'keys'), `bench-cache-${process.pid}`);
  const cacheDir = join(workDir, 'cache');
  await publishToCache({ dir: cacheDir, key, paths: [systems['bench-base']!.path, systems['bench-realistic']!.path] });
  const target = systems['bench-realistic']!.path;

  // The agent as the NixOS package runs it (bundle, agent/node-flags): its peak RSS is a target.
  const lab = await Lab.start({ fixtures: { cache: { dir: cacheDir, key } }, network: false, agent: 'bundle' });
  try {
    await lab.serveCache();
    const controller = await lab.startController();
    const raw = await lab.addHost('raw-1', { bootstrap: systems['bench-base']! });
    const shoal = await lab.addHost('shoal-1', { bootstrap: systems['bench-base']! });

    let started = wallMs();
    const realised = await raw.realise(target);
    if (realised.exitCode !== 0) throw new Error(`raw realise failed: ${realised.stderr.slice(-500)}`);
    await raw.sh(`nix-env --profile /nix/var/nix/profiles/system --set '${target}' && '${target}/bin/switch-to-configuration' test && '${target}/bin/switch-to-configuration' boot`, { timeoutMs: 120_000 });
    const rawMs = wallMs() - started;
    log(`  raw nix: ${round(rawMs / 1000, 2)} s`);

    await shoal.start();
    await controller.waitForHost('shoal-1', 'connected by websocket', (h) => h.connection === 'websocket', 30_000);
    const agentPid = findAgentPid(shoal.agent!.pid);
    const before = agentPid ? procStats(agentPid) : null;
    let peakRss = 0;
    const sampler = setInterval(() => {
      if (agentPid) peakRss = Math.max(peakRss, procStats(agentPid).rssMb);
    }, 100);
    started = wallMs();
    const { version } = await controller.client.setDesired('shoal-1', target);
    await controller.waitForPhase('shoal-1', version, 'healthy', 300_000, () => lab.diagnostics());
    clearInterval(sampler);
    // The healthy report's storage time on the controller, not when our status poll noticed it.
    const events = await controller.client.events('shoal-1');
    const healthy = events.find((e) => e.kind === 'report' && (e.data as { phase?: string; manifestVersion?: number }).phase === 'healthy' && (e.data as { manifestVersion?: number }).manifestVersion === version);
    const shoalMs = (healthy ? Date.parse(healthy.at) : wallMs()) - started;
    log(`  shoal: ${round(shoalMs / 1000, 2)} s`);
    const figures: Figures = {
      'deploy.raw_nix_s': round(rawMs / 1000, 2),
      'deploy.shoal_s': round(shoalMs / 1000, 2),
      'deploy.overhead_ratio': round(shoalMs / rawMs, 3),
      'deploy.overhead_ms': round(shoalMs - rawMs, 0),
    };
    if (agentPid && before) {
      const after = procStats(agentPid);
      figures['agent.deploy_peak_rss_mb'] = round(peakRss, 1);
      figures['agent.deploy_cpu_s'] = round(after.cpuSeconds - before.cpuSeconds, 2);
    }
    if (shoal.currentSystem() !== target) throw new Error(`shoal-1 runs ${shoal.currentSystem()}, expected ${target}`);
    return figures;
  } finally {
    await lab.cleanup();
  }
}
