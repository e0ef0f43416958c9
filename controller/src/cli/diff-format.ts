import type { FleetDiff, HostDiff, PackageChange, PreflightResult } from '../../../shared/src/closure-api.js';
import type { Paint } from './colour.js';
import { shortPath } from './format.js';
import { bytes, count, versions } from '../closure-diff/describe.js';

/** Table rows of changes, names padded to one column; at most `limit` (the rest counted). */
function changeRows(changes: ReadonlyArray<Pick<PackageChange, 'name' | 'kind' | 'before' | 'after' | 'reboot'> & { hosts?: number }>, limit: number, paint: Paint): string[] {
  const shown = changes.slice(0, limit);
  const nameWidth = Math.min(28, Math.max(8, ...shown.map((c) => c.name.length)));
  const versionWidth = Math.min(30, Math.max(8, ...shown.map((c) => versions(c).length)));
  const rows = shown.map((c) => {
    const name = c.name.length > nameWidth ? `${c.name.slice(0, nameWidth - 1)}…` : c.name.padEnd(nameWidth);
    const hosts = c.hosts === undefined ? '' : `  ${count(c.hosts, 'host')}`;
    const row = `  ${name}  ${versions(c).padEnd(versionWidth)}${hosts}${c.reboot ? '  reboot' : ''}`;
    return c.reboot ? row.replace(/reboot$/, paint.yellow('reboot')) : row.trimEnd();
  });
  if (changes.length > limit) rows.push(paint.dim(`  … and ${changes.length - limit} more (--json lists every change)`));
  return rows;
}

/** The fleet diff of a plan, compact: the changes by reach, the download, the change sets, who drifted. */
export function fleetDiffLines(diff: FleetDiff, paint: Paint, limit = 15): string[] {
  const lines: string[] = [];
  const moving = diff.hosts - diff.upToDate;
  lines.push(paint.bold(`changes on ${count(moving, 'host')}${diff.upToDate ? ` (${diff.upToDate} already up to date)` : ''}, ${count(diff.groups.filter((g) => g.changes.length > 0).length, 'change set')}:`));
  lines.push(...changeRows(diff.packages, limit, paint));
  const largest = diff.largestDownload ? `, largest ${diff.largestDownload.host} ${bytes(diff.largestDownload.bytes)}` : '';
  lines.push(`download: ${bytes(diff.downloadBytes)} in total${largest}${diff.rebootHosts ? ` · ${count(diff.rebootHosts, 'host')} need a reboot` : ''}`);
  if (diff.groups.length > 1) {
    for (const group of diff.groups.slice(0, 5)) {
      const names = group.changes.length === 0 ? 'nothing to change' : group.changes.slice(0, 4).map((c) => c.name).join(', ') + (group.changes.length > 4 ? `, +${group.changes.length - 4}` : '');
      const who = group.hosts.slice(0, 3).join(', ') + (group.hosts.length > 3 ? ', …' : '');
      lines.push(paint.dim(`  ${count(group.hosts.length, 'host').padEnd(10)} ${names} (${who})`));
    }
    if (diff.groups.length > 5) lines.push(paint.dim(`  … and ${diff.groups.length - 5} more change sets`));
  }
  if (diff.incomplete.length > 0) {
    lines.push(paint.yellow(`partly known on ${count(diff.incomplete.length, 'host')} (${diff.incomplete.slice(0, 5).join(', ')}${diff.incomplete.length > 5 ? ', …' : ''}): what they run is unknown or not in the cache`));
  }
  return lines;
}

export function preflightLines(preflight: PreflightResult, paint: Paint, limit = 10): string[] {
  switch (preflight.outcome) {
    case 'not-configured':
      // A controller without caches has nothing to say here; the plan reads as it always did.
      return [];
    case 'passed':
      return [`preflight: ${paint.green('passed')}: ${count(preflight.paths, 'path')} of the target closures are in the cache, signed by a trusted key`];
    case 'failed': {
      const lines = [`preflight: ${paint.red('failed')}: ${count(preflight.problems.length, 'path')} of ${preflight.paths} cannot be served; \`rollout start\` refuses (--skip-preflight overrides)`];
      for (const p of preflight.problems.slice(0, limit)) {
        lines.push(`  ${p.path}`, paint.dim(`    ${p.kind}: ${p.detail}; ${count(p.hosts.length, 'host')}: ${p.hosts.slice(0, 5).join(', ')}${p.hosts.length > 5 ? ', …' : ''}`));
      }
      if (preflight.problems.length > limit) lines.push(paint.dim(`  … and ${preflight.problems.length - limit} more (--json lists all)`));
      return lines;
    }
  }
}

export function driftLines(drifted: readonly string[], paint: Paint): string[] {
  if (drifted.length === 0) return [];
  const names = `${drifted.slice(0, 5).join(', ')}${drifted.length > 5 ? `, … (${drifted.length})` : ''}`;
  return [paint.yellow(`drifted: ${names} (running a system Shoal did not install; see \`shoal host diff HOST\`)`)];
}

/** One host's diff, for `shoal host diff`. */
export function hostDiffLines(diff: HostDiff, paint: Paint): string {
  const lines = [paint.bold(`${diff.host}: ${shortPath(diff.current)} → ${shortPath(diff.target)}${diff.drifted ? paint.yellow(' (drifted: runs a system Shoal did not install)') : ''}`)];
  if (diff.note) lines.push(paint.yellow(diff.note));
  if (diff.status === 'up-to-date') lines.push('already runs its target');
  else {
    lines.push(...changeRows(diff.changes, Number.MAX_SAFE_INTEGER, paint));
    const before = diff.closureBytesBefore === null ? '?' : bytes(diff.closureBytesBefore);
    lines.push(`download: ${count(diff.newPaths, 'path')}, ${bytes(diff.downloadBytes)} (${bytes(diff.downloadNarBytes)} unpacked) · closure ${before} → ${bytes(diff.closureBytesAfter)}`);
  }
  return `${lines.join('\n')}\n`;
}
