import type { Release, ReleaseProvenance } from '../../../shared/src/rollout-api.js';
import { splitStorePath } from '../../../shared/src/store-path.js';
import { fit } from './format.js';
import { localTime } from './time.js';

/** Local time with zone, to the minute: enough for a human, short enough for a table. */
export function shortTime(iso: string): string {
  return localTime(iso);
}

/** A store path without "/nix/store/" and with a 7-character hash: "abcdefg-nixos-system-web-1". */
export function shortStorePath(path: string): string {
  const { hash, name } = splitStorePath(path);
  return `${hash.slice(0, 7)}-${name}`;
}

export function releaseListTable(releases: ReadonlyArray<Omit<Release, 'hosts'> & { hosts: number }>): string {
  const row = (cells: string[]) => [fit(cells[0]!, 20), fit(cells[1]!, 5), fit(cells[2]!, 21), fit(cells[3]!, 10), fit(cells[4]!, 16)].join('  ').trimEnd();
  const lines = [row(['RELEASE', 'HOSTS', 'CREATED', 'SOURCE', 'DESCRIPTION'])];
  for (const r of releases) lines.push(row([r.name, String(r.hosts), shortTime(r.createdAt), r.source ?? '-', r.description || '-']));
  if (releases.length === 0) lines.push('(no releases)');
  return `${lines.join('\n')}\n`;
}

/** Who vouched for the release, with what key and when, and what it was built from. */
export function provenanceLines(provenance: ReleaseProvenance): string[] {
  const { signedBy, keyId, signedAt, floor, source } = provenance;
  if (signedBy === null) return ['not signed (stored before releases carried signed statements)'];
  const who = signedBy === 'ci' ? `CI key ${keyId ?? '?'}` : `this controller's single key ${keyId ?? '?'} (single-key mode)`;
  const lines = [`signed by ${who}${signedAt ? ` at ${shortTime(signedAt)}` : ''}, floor ${floor}`];
  if (source) lines.push(`built from revision ${source.revision ?? '(none: not a clean git tree)'}${source.flakeLockHash ? `, flake.lock sha256 ${source.flakeLockHash}` : ''}`);
  return lines;
}

export function releaseLines(release: Release): string {
  const lines = [
    `release ${release.name}: ${release.hosts.length} host${release.hosts.length === 1 ? '' : 's'}, created ${shortTime(release.createdAt)} by ${release.createdBy}`,
    ...provenanceLines(release.provenance),
  ];
  if (release.source) lines.push(`source ${release.source}`);
  if (release.description) lines.push(fit(release.description, 80).trimEnd());
  lines.push('');
  const width = Math.min(24, Math.max(4, ...release.hosts.map((h) => h.host.length)));
  lines.push(`${'HOST'.padEnd(width)}  SYSTEM`);
  for (const { host, storePath } of release.hosts) lines.push(`${fit(host, width)}  ${fit(shortStorePath(storePath), 78 - width)}`.trimEnd());
  return `${lines.join('\n')}\n`;
}
