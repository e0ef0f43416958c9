import { and, eq, inArray, isNotNull } from 'drizzle-orm';
import { assessReboot, type BootFacts } from '../../../shared/src/reboot.js';
import type { SystemFacts } from '../../../shared/src/release-statement.js';
import type { RebootPrediction } from '../../../shared/src/rollout-api.js';
import type { Store } from '../db/store.js';

/**
 * Which hosts a release will reboot, before a rollout starts: the release's facts about each new
 * system against the facts of the system the host reports running (any release that described
 * that store path). The controller does not know the booted system; it takes the running one,
 * which is the same on a host that had no live-switched kernel change since its last boot. The
 * agent decides again on the host (agent/src/reboot.ts), with the same rule.
 */
export async function predictReboots(store: Store, release: string, planned: readonly string[]): Promise<RebootPrediction[]> {
  const { hosts, releaseHosts } = store.t;
  const wanted = new Set(planned);
  const targets = (await store.q.select({ host: releaseHosts.host, facts: releaseHosts.facts }).from(releaseHosts).where(eq(releaseHosts.release, release))).filter((row) =>
    wanted.has(row.host),
  );
  const names = [...wanted];
  const running = new Map<string, string | null>();
  for (let i = 0; i < names.length; i += 500) {
    const rows = await store.q.select({ name: hosts.name, currentSystem: hosts.currentSystem }).from(hosts).where(inArray(hosts.name, names.slice(i, i + 500)));
    for (const row of rows) running.set(row.name, row.currentSystem);
  }
  const paths = [...new Set([...running.values()].filter((p): p is string => p !== null))];
  const known = new Map<string, BootFacts>();
  for (let i = 0; i < paths.length; i += 500) {
    const rows = await store.q
      .select({ storePath: releaseHosts.storePath, facts: releaseHosts.facts })
      .from(releaseHosts)
      .where(and(inArray(releaseHosts.storePath, paths.slice(i, i + 500)), isNotNull(releaseHosts.facts)));
    for (const row of rows) if (!known.has(row.storePath)) known.set(row.storePath, row.facts as unknown as SystemFacts);
  }
  return targets
    .map((row): RebootPrediction => {
      const target = row.facts as unknown as SystemFacts | null;
      const currentPath = running.get(row.host) ?? null;
      const current = currentPath === null ? undefined : known.get(currentPath);
      if (!target || !current) return { host: row.host, prediction: 'unknown', reasons: [] };
      const assessment = assessReboot(current, current, target);
      return { host: row.host, prediction: assessment.needed ? 'reboot' : 'live', reasons: assessment.reasons };
    })
    .sort((a, b) => a.host.localeCompare(b.host));
}
