import type { PackageChange } from '../../../shared/src/closure-api.js';

/** Words for diffs, shared by the CLI and the dashboard. */

/** 1536 → "1.5 KiB": sizes as `nix path-info -h` prints them. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** "1,210 hosts". */
export const count = (n: number, word: string) => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;

/** "3.3.1 → 3.3.2", "+ 3.3.0", "− 8.0", "rebuilt": the version part of a change. */
export function versions(change: Pick<PackageChange, 'kind' | 'before' | 'after'>): string {
  const list = (v: string[]) => v.map((x) => x || 'ε').join(', ');
  switch (change.kind) {
    case 'added':
      return `+ ${list(change.after)}`;
    case 'removed':
      return `− ${list(change.before)}`;
    case 'rebuilt':
      return 'rebuilt';
    case 'changed':
      return `${list(change.before) || '∅'} → ${list(change.after) || '∅'}`;
  }
}

