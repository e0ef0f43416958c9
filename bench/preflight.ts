import { join } from 'node:path';
import { ClosureCache } from '../controller/src/cache/closure.js';
import { BinaryCacheReader } from '../controller/src/cache/reader.js';
import { readFleetDiff } from '../controller/src/closure-diff/release-diff.js';
import { runPreflight } from '../controller/src/rollouts/preflight.js';
import { parsePublicKey, toBase64, generateNamedKey } from '../shared/src/keys.js';
import { generateCacheKey, publishToCache } from '../test/lab/binary-cache.js';
import { Lab } from '../test/lab/lab.js';
import { REALISTIC_CHANGES, realisticPackages } from '../test/lab/realistic-closure.js';
import { buildSystems } from '../test/lab/systems.js';
import type { Figures } from './lib/results.js';
import { round, wallMs } from './lib/stats.js';

/**
 * Cache preflight and fleet diff for `hosts` hosts sharing a realistic closure (two generations of
 * ~250 package paths, most shared), read over HTTP from a Nix-signed lab binary cache: in process
 * with a cold reader (every narinfo fetched once), warm (all remembered), and through the real
 * controller's plan endpoint (diff + preflight of a release naming every host).
 */
export async function runPreflightBench({ workDir, hosts, log }: { workDir: string; hosts: number; log: (line: string) => void }): Promise<Figures> {
  const built = await buildSystems(
    [
      { name: 'bench-gen-1', packages: realisticPackages() },
      { name: 'bench-gen-2', packages: realisticPackages({ changes: REALISTIC_CHANGES }) },
    ],
    join(workDir, 'systems'),
  );
  const [from, to] = [built['bench-gen-1']!.path, built['bench-gen-2']!.path];
  const key = await generateCacheKey(join(workDir, 'keys'), `bench-cache-${process.pid}`);
  const cacheDir = join(workDir, 'cache');
  await publishToCache({ dir: cacheDir, key, paths: [from, to] });

  const lab = await Lab.start({ fixtures: { cache: { dir: cacheDir, key } }, network: false });
  try {
    const cache = await lab.serveCache();
    const names = Array.from({ length: hosts }, (_, i) => `host-${String(i).padStart(5, '0')}`);
    const targets = names.map((host) => ({ host, storePath: to }));
    const reader = () => new BinaryCacheReader({ caches: [{ url: cache.url, publicKeys: [parsePublicKey(key.publicKey)] }], concurrency: 32, timeoutMs: 10_000 });

    const cold = reader();
    let started = wallMs();
    const result = await runPreflight(cold, new ClosureCache(cold), targets, wallMs);
    const coldMs = wallMs() - started;
    if (result.outcome !== 'passed') throw new Error(`preflight ${result.outcome}: ${JSON.stringify(result.problems.slice(0, 3))}`);
    log(`  preflight, ${hosts} hosts, cold: ${round(coldMs, 0)} ms (${result.paths} paths, ${cold.requests} requests)`);
    started = wallMs();
    await runPreflight(cold, new ClosureCache(cold), targets, wallMs);
    const warmMs = wallMs() - started;

    const diffReader = reader();
    started = wallMs();
    const diff = await readFleetDiff(new ClosureCache(diffReader), names.map((host) => ({ host, current: from, target: to, drifted: false })));
    const diffMs = wallMs() - started;
    log(`  fleet diff, cold: ${round(diffMs, 0)} ms (${diff.packages.length} package changes, ${diff.groups.length} change set)`);

    // Through the controller: a release naming every host, planned over the API (a fresh controller: cold).
    const controller = await lab.startController({ caches: 'lab' });
    for (const name of names) await controller.client.registerHost({ name, publicKey: toBase64(generateNamedKey('h').publicKey) });
    await controller.client.createRelease({ name: 'bench', hosts: Object.fromEntries(names.map((h) => [h, to])) });
    started = wallMs();
    const plan = await controller.client.plan({ release: 'bench', waves: ['100%'] });
    const planMs = wallMs() - started;
    if (plan.preflight.outcome !== 'passed') throw new Error(`plan preflight ${plan.preflight.outcome}`);
    log(`  plan over HTTP with diff and preflight: ${round(planMs, 0)} ms`);

    return {
      [`preflight.${hosts}.cold_ms`]: round(coldMs, 0),
      [`preflight.${hosts}.warm_ms`]: round(warmMs, 1),
      [`preflight.${hosts}.paths`]: result.paths,
      [`preflight.${hosts}.narinfo_requests`]: cold.requests,
      [`preflight.${hosts}.fleet_diff_cold_ms`]: round(diffMs, 0),
      [`preflight.${hosts}.plan_http_ms`]: round(planMs, 0),
    };
  } finally {
    await lab.cleanup();
  }
}
