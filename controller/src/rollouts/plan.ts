import { createHash } from 'node:crypto';
import type { PlannedWave, Release, RolloutPlan, RolloutSpec, WaveSpec } from '../../../shared/src/rollout-api.js';

export type PlanOutcome = { ok: true; plan: RolloutPlan } | { ok: false; problems: string[] };

/** What planning needs of a release: its name and hosts, not its provenance. */
export type PlannedRelease = Pick<Release, 'name' | 'hosts'>;

/**
 * Order hosts by a hash of release and host name: stable for a release (the dry-run plan is what
 * `start` does), but a different canary for each release, so one host does not always go first.
 */
function rolloutOrder(releaseName: string, hosts: readonly string[]): string[] {
  // Each key hashed once, not twice per comparison: 10,000 hosts took 300 ms to order.
  const keyed = hosts.map((host) => ({ host, key: createHash('sha256').update(`${releaseName}\0${host}`).digest('hex') }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.host.localeCompare(b.host)));
  return keyed.map((entry) => entry.host);
}

function selectHosts(spec: RolloutSpec, release: PlannedRelease, tagsOf: ReadonlyMap<string, readonly string[]>, problems: string[]): string[] {
  const inRelease = new Set(release.hosts.map((h) => h.host));
  const { hosts, tags } = spec.selector;
  if (!hosts?.length && !tags?.length) return [...inRelease];
  const chosen = new Set<string>();
  for (const host of hosts ?? []) {
    if (inRelease.has(host)) chosen.add(host);
    else problems.push(`selector names host "${host}", which is not in release "${release.name}"`);
  }
  for (const tag of tags ?? []) {
    const tagged = [...inRelease].filter((host) => tagsOf.get(host)?.includes(tag));
    if (tagged.length === 0) problems.push(`selector tag "${tag}" matches no host of release "${release.name}"`);
    tagged.forEach((host) => chosen.add(host));
  }
  return [...chosen];
}

function describeWave(wave: WaveSpec): string {
  if (typeof wave === 'string') return wave;
  if (typeof wave === 'number') return `${wave} hosts`;
  return 'hosts' in wave ? `hosts ${wave.hosts.join(',')}` : `tags ${wave.tags.join(',')}`;
}

export function planRollout(spec: RolloutSpec, release: PlannedRelease, tagsOf: ReadonlyMap<string, readonly string[]>): PlanOutcome {
  const problems: string[] = [];
  const ordered = rolloutOrder(release.name, selectHosts(spec, release, tagsOf, problems));
  const total = ordered.length;
  if (problems.length === 0 && total === 0) problems.push('the selection contains no hosts');
  if (spec.canary > 0 && spec.canary >= total && total > 0) {
    problems.push(`a canary of ${spec.canary} leaves none of the ${total} selected hosts for the waves`);
  }

  const assigned = new Set<string>();
  const waves: PlannedWave[] = [];
  const take = (hosts: string[]) => {
    hosts.forEach((h) => assigned.add(h));
    return hosts;
  };
  const unassigned = () => ordered.filter((h) => !assigned.has(h));

  if (spec.canary > 0) waves.push({ index: 0, canary: true, needsApproval: false, hosts: take(ordered.slice(0, spec.canary)) });

  let previousTarget = spec.canary;
  spec.waves.forEach((wave, position) => {
    const label = `wave ${position + 1} (${describeWave(wave)})`;
    let hosts: string[];
    if (typeof wave === 'string' || typeof wave === 'number') {
      const target = typeof wave === 'number' ? Math.min(wave, total) : Math.ceil((Number(wave.slice(0, -1)) / 100) * total);
      if (target < previousTarget && typeof wave === 'string') {
        problems.push(`${label} would cover fewer hosts (${target}) than the waves before it (${previousTarget}); waves are cumulative`);
      }
      hosts = unassigned().slice(0, Math.max(0, target - assigned.size));
      previousTarget = Math.max(previousTarget, target);
    } else if ('hosts' in wave) {
      hosts = [];
      for (const host of wave.hosts) {
        if (!ordered.includes(host)) problems.push(`${label} names host "${host}", which is not selected by this rollout`);
        else if (assigned.has(host)) problems.push(`${label} names host "${host}", which an earlier wave already has`);
        else hosts.push(host);
      }
      previousTarget = assigned.size + hosts.length;
    } else {
      hosts = unassigned().filter((host) => wave.tags.some((tag) => tagsOf.get(host)?.includes(tag)));
      previousTarget = assigned.size + hosts.length;
    }
    waves.push({ index: waves.length, canary: false, needsApproval: false, hosts: take(hosts) });
  });

  for (const index of spec.approvalBefore) {
    const wave = waves[index];
    if (wave) wave.needsApproval = true;
    // approvalBefore holds positions (0-based); people count waves from 1, so say both.
    else problems.push(`approvalBefore names position ${index} (wave ${index + 1}), but the rollout has ${waves.length} wave${waves.length === 1 ? '' : 's'} (positions 0 to ${waves.length - 1})`);
  }
  const left = unassigned();
  if (left.length > 0 && total > 0) {
    problems.push(
      `the waves cover ${assigned.size} of ${total} selected hosts; ${left.length} (${left.slice(0, 5).join(', ')}${left.length > 5 ? ', …' : ''}) are in no wave — end with "100%"`,
    );
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, plan: { release: release.name, waves } };
}
