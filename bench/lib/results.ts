import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'latest.json');

export type Figures = Record<string, number>;

/** Merges figures into bench/results/latest.json, so one script run on its own updates only its own names. */
export function saveFigures(figures: Figures, file = RESULTS_FILE): void {
  let existing: Figures = {};
  try {
    existing = JSON.parse(readFileSync(file, 'utf8')) as Figures;
  } catch {
    // First run, or a file from an interrupted run: start afresh.
  }
  mkdirSync(dirname(file), { recursive: true });
  const merged = { ...existing, ...figures };
  const sorted = Object.fromEntries(Object.keys(merged).sort().map((k) => [k, merged[k]!]));
  writeFileSync(file, `${JSON.stringify(sorted, null, 2)}\n`);
}

export function formatTable(figures: Figures, targets: Record<string, string> = {}): string {
  const names = Object.keys(figures);
  const width = Math.max(6, ...names.map((n) => n.length));
  const valueWidth = Math.max(5, ...names.map((n) => formatValue(figures[n]!).length));
  const lines = [`${'figure'.padEnd(width)}  ${'value'.padStart(valueWidth)}  target`];
  for (const name of names) {
    lines.push(`${name.padEnd(width)}  ${formatValue(figures[name]!).padStart(valueWidth)}  ${targets[name] ?? ''}`.trimEnd());
  }
  return lines.join('\n');
}

function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(3);
}
