import type { ChangeGroup, FleetDiff, FleetPackageChange, HostDiff, PackageChange } from '../../../shared/src/closure-api.js';

/** What makes two changes "the same" across hosts: package, kind and versions (not the byte count). */
function changeKey(change: PackageChange): string {
  return JSON.stringify([change.name, change.kind, change.before, change.after]);
}

/**
 * The fleet's view of a release: each package change with how many hosts it reaches (most hosts
 * first), the download in total and for the largest host, and hosts grouped by identical change
 * sets, so a thousand hosts moving the same way read as one line.
 */
export function fleetDiff(hosts: readonly HostDiff[]): FleetDiff {
  const packages = new Map<string, FleetPackageChange>();
  const groups = new Map<string, ChangeGroup>();
  const groupOf = new Map<string, string>();
  let downloadBytes = 0;
  let largest: FleetDiff['largestDownload'] = null;
  for (const diff of hosts) {
    downloadBytes += diff.downloadBytes;
    if (diff.downloadBytes > 0 && (!largest || diff.downloadBytes > largest.bytes)) largest = { host: diff.host, bytes: diff.downloadBytes };
    for (const change of diff.changes) {
      const key = changeKey(change);
      const entry = packages.get(key);
      if (entry) entry.hosts += 1;
      else packages.set(key, { name: change.name, kind: change.kind, before: change.before, after: change.after, reboot: change.reboot, hosts: 1 });
    }
    const setKey = JSON.stringify(diff.changes.map(changeKey));
    groupOf.set(diff.host, setKey);
    const group = groups.get(setKey);
    if (group) {
      group.hosts.push(diff.host);
      group.downloadBytes += diff.downloadBytes;
    } else groups.set(setKey, { hosts: [diff.host], changes: diff.changes, downloadBytes: diff.downloadBytes });
  }
  const ordered = [...groups.entries()].sort((a, b) => b[1].hosts.length - a[1].hosts.length);
  const index = new Map(ordered.map(([key], i) => [key, i]));
  return {
    hosts: hosts.length,
    packages: [...packages.values()].sort((a, b) => b.hosts - a.hosts || Number(b.reboot) - Number(a.reboot) || a.name.localeCompare(b.name)),
    downloadBytes,
    largestDownload: largest,
    rebootHosts: hosts.filter((h) => h.reboot).length,
    upToDate: hosts.filter((h) => h.status === 'up-to-date').length,
    incomplete: hosts.filter((h) => h.status === 'current-unknown' || h.status === 'current-not-in-cache' || h.status === 'target-incomplete').map((h) => h.host),
    drifted: hosts.filter((h) => h.drifted).map((h) => h.host),
    groups: ordered.map(([, group]) => group),
    perHost: hosts.map(({ changes: _changes, ...rest }) => ({ ...rest, group: index.get(groupOf.get(rest.host)!)! })),
  };
}
