import type { HostDiff, PackageChange } from '../../../shared/src/closure-api.js';
import type { Closure } from '../cache/closure.js';
import { needsReboot, parsePackageName, storeName } from './package-name.js';

/** Sizes of the paths of a closure, by store path: what the diff needs of narinfos. */
export type ClosureSizes = ReadonlyMap<string, { narSize: number; fileSize: number | null }>;

/** Like diff-closures: a package whose versions did not change is shown only when its size moved this much. */
export const SIZE_CHANGE_SHOWN_BYTES = 8 * 1024;

interface Group {
  versions: Set<string>;
  bytes: number;
}

function group(closure: ClosureSizes): Map<string, Group> {
  const groups = new Map<string, Group>();
  for (const [path, info] of closure) {
    const { name, version } = parsePackageName(storeName(path));
    let entry = groups.get(name);
    if (!entry) {
      entry = { versions: new Set(), bytes: 0 };
      groups.set(name, entry);
    }
    entry.versions.add(version);
    entry.bytes += info.narSize;
  }
  return groups;
}

const sorted = (values: Iterable<string>) => [...values].sort();

/**
 * Package changes from one closure to another, grouped and reported as `nix store diff-closures`
 * does: by package name, the versions only one side has, the size change. Sorted by name.
 */
export function diffClosures(before: ClosureSizes, after: ClosureSizes): PackageChange[] {
  const old = group(before);
  const now = group(after);
  const changes: PackageChange[] = [];
  for (const name of sorted(new Set([...old.keys(), ...now.keys()]))) {
    const a = old.get(name);
    const b = now.get(name);
    const removed = sorted([...(a?.versions ?? [])].filter((v) => !b?.versions.has(v)));
    const added = sorted([...(b?.versions ?? [])].filter((v) => !a?.versions.has(v)));
    const sizeDelta = (b?.bytes ?? 0) - (a?.bytes ?? 0);
    let kind: PackageChange['kind'];
    if (!a) kind = 'added';
    else if (!b) kind = 'removed';
    else if (removed.length > 0 || added.length > 0) kind = 'changed';
    else if (Math.abs(sizeDelta) >= SIZE_CHANGE_SHOWN_BYTES) kind = 'rebuilt';
    else continue;
    changes.push({ name, kind, before: removed, after: added, sizeDelta, reboot: needsReboot(name) && kind !== 'rebuilt' });
  }
  return changes;
}

export interface HostDiffInput {
  host: string;
  current: string | null;
  target: string;
  /** null when `current` is null. */
  currentClosure: Closure | null;
  targetClosure: Closure;
  drifted: boolean;
}

const EMPTY: ClosureSizes = new Map();

function sum(closure: ClosureSizes, paths: Iterable<string>, field: 'narSize' | 'fileSize'): number {
  let total = 0;
  for (const path of paths) {
    const info = closure.get(path)!;
    total += field === 'fileSize' ? (info.fileSize ?? info.narSize) : info.narSize;
  }
  return total;
}

/**
 * One host's change from what it runs to its target: packages, what it must download (target
 * paths its current closure lacks, at their compressed size) and closure sizes. When the current
 * system is unknown or not in the cache, everything in the target counts as new: an upper bound,
 * said so in `note`.
 */
export function hostDiff(input: HostDiffInput): HostDiff {
  const { host, current, target, targetClosure, drifted } = input;
  const after = targetClosure.paths;
  const currentKnown = input.currentClosure !== null && input.currentClosure.paths.has(input.currentClosure.root);
  const before = currentKnown ? input.currentClosure!.paths : EMPTY;
  const fresh = [...after.keys()].filter((path) => !before.has(path));
  const changes = current === target ? [] : diffClosures(before, after);

  let status: HostDiff['status'] = 'ok';
  let note: string | null = null;
  if (current === target) status = 'up-to-date';
  else if (current === null) {
    status = 'current-unknown';
    note = 'the host has not reported what it runs: the whole target counts as new';
  } else if (!currentKnown) {
    status = 'current-not-in-cache';
    note = `what the host runs (${current}) is not in the binary cache: the whole target counts as new`;
  }
  if (targetClosure.unreadable.size > 0) {
    status = status === 'up-to-date' ? status : 'target-incomplete';
    note = [note, `${targetClosure.unreadable.size} path(s) of the target could not be read from the cache: sizes cover the rest`].filter(Boolean).join('; ');
  }
  return {
    host,
    current,
    target,
    status,
    note,
    changes,
    newPaths: current === target ? 0 : fresh.length,
    downloadBytes: current === target ? 0 : sum(after, fresh, 'fileSize'),
    downloadNarBytes: current === target ? 0 : sum(after, fresh, 'narSize'),
    closureBytesBefore: currentKnown ? sum(before, before.keys(), 'narSize') : null,
    closureBytesAfter: sum(after, after.keys(), 'narSize'),
    pathsBefore: currentKnown ? before.size : null,
    pathsAfter: after.size,
    reboot: changes.some((c) => c.reboot),
    drifted,
  };
}
