import type { PreflightProblem, PreflightProblemKind, PreflightResult } from '../../../shared/src/closure-api.js';
import type { ClosureCache, UnreadablePath } from '../cache/closure.js';
import type { BinaryCacheReader } from '../cache/reader.js';

export interface PreflightTarget {
  host: string;
  storePath: string;
}

function problemOf(lookup: UnreadablePath): { kind: PreflightProblemKind; detail: string } {
  switch (lookup.state) {
    case 'missing':
      return { kind: 'missing', detail: 'in no configured binary cache' };
    case 'error':
      return { kind: 'unreadable', detail: lookup.detail };
    case 'untrusted':
      if (lookup.reason === 'unsigned') return { kind: 'unsigned', detail: `${lookup.cache} serves it without a signature` };
      if (lookup.reason === 'bad-signature') {
        return { kind: 'bad-signature', detail: `${lookup.cache} serves it with a signature by ${lookup.keyIds.join(', ')} that does not verify (forged or altered)` };
      }
      return { kind: 'untrusted-key', detail: `${lookup.cache} serves it signed only by ${lookup.keyIds.join(', ')}, which the hosts do not trust` };
  }
}

/**
 * Cache readiness before a rollout issues anything: every path of every target closure must be
 * in a configured cache and signed by a key the hosts trust, or a host would stop mid-wave unable
 * to fetch it. Each distinct closure is walked once, each shared path fetched once.
 */
export async function runPreflight(
  reader: BinaryCacheReader,
  closures: ClosureCache,
  targets: readonly PreflightTarget[],
  now: () => number,
): Promise<PreflightResult> {
  const started = now();
  const hosts = new Set(targets.map((t) => t.host)).size;
  if (!reader.configured) return { outcome: 'not-configured', hosts, paths: 0, problems: [], durationMs: 0 };
  const byTarget = new Map<string, string[]>();
  for (const { host, storePath } of targets) byTarget.set(storePath, [...(byTarget.get(storePath) ?? []), host]);
  const read = await Promise.all([...byTarget.keys()].map((root) => closures.get(root)));

  const seen = new Set<string>();
  const problems = new Map<string, PreflightProblem>();
  for (const closure of read) {
    const affected = byTarget.get(closure.root)!;
    for (const path of closure.paths.keys()) seen.add(path);
    for (const [path, lookup] of closure.unreadable) {
      seen.add(path);
      const known = problems.get(path);
      if (known) known.hosts.push(...affected);
      else problems.set(path, { path, ...problemOf(lookup), hosts: [...affected] });
    }
  }
  const list = [...problems.values()].map((p) => ({ ...p, hosts: [...new Set(p.hosts)].sort() }));
  list.sort((a, b) => b.hosts.length - a.hosts.length || a.path.localeCompare(b.path));
  return { outcome: list.length > 0 ? 'failed' : 'passed', hosts, paths: seen.size, problems: list, durationMs: now() - started };
}

/** One line per problem, for an API refusal and the CLI: "PATH: missing (in no configured binary cache); hosts web-1, web-2". */
export function describeProblems(problems: readonly PreflightProblem[], limit = 50): string[] {
  const lines = problems.slice(0, limit).map((p) => {
    const hosts = p.hosts.length > 10 ? `${p.hosts.slice(0, 10).join(', ')} and ${p.hosts.length - 10} more` : p.hosts.join(', ');
    return `${p.path}: ${p.kind} (${p.detail}); ${p.hosts.length === 1 ? 'host' : `${p.hosts.length} hosts`} ${hosts}`;
  });
  if (problems.length > limit) lines.push(`and ${problems.length - limit} more path(s)`);
  return lines;
}
