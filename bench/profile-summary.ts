import { readFileSync } from 'node:fs';

/**
 * Prints the functions with the most self time in a .cpuprofile (node --cpu-prof):
 * `tsx bench/profile-summary.ts FILE [N] [--window FROM-TO]`, the window in seconds from the
 * profile's start (a benchmark's phase: the last 20 s of a scale run are its report ingest).
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

const args = process.argv.slice(2);
const windowAt = args.indexOf('--window');
const [fromS, toS] = windowAt >= 0 ? args.splice(windowAt, 2)[1]!.split('-').map(Number) : [0, Infinity];
const [file, limitText] = args;
if (!file || fromS === undefined || toS === undefined || Number.isNaN(fromS) || Number.isNaN(toS)) {
  throw new Error('usage: bench/profile-summary.ts FILE.cpuprofile [N] [--window FROM-TO]');
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
};
// Hits are recounted from the samples so that a window can select a phase of the run.
for (const node of profile.nodes) node.hitCount = 0;
const hitsById = new Map(profile.nodes.map((n) => [n.id, n]));
let atUs = 0;
let totalHits = 0;
profile.samples.forEach((id, index) => {
  atUs += profile.timeDeltas[index] ?? 0;
  if (atUs < fromS * 1e6 || atUs > toS * 1e6) return;
  hitsById.get(id)!.hitCount! += 1;
  totalHits += 1;
});
const bySelf = new Map<string, number>();
for (const node of profile.nodes) {
  const { functionName, url, lineNumber } = node.callFrame;
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|work\/main)\//, '')}:${lineNumber + 1}`;
  bySelf.set(key, (bySelf.get(key) ?? 0) + (node.hitCount ?? 0));
}
// Inclusive time: a node's own hits plus its subtree's (recursion counted once per path).
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const total = new Map<number, number>();
const subtree = (id: number): number => {
  const known = total.get(id);
  if (known !== undefined) return known;
  const node = byId.get(id)!;
  const sum = (node.hitCount ?? 0) + (node.children ?? []).reduce((acc, child) => acc + subtree(child), 0);
  total.set(id, sum);
  return sum;
};
const inclusive = new Map<string, number>();
for (const node of profile.nodes) {
  const { functionName, url, lineNumber } = node.callFrame;
  if (!url.includes('/controller/src/') && !url.includes('/shared/src/')) continue;
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/work\/main\//, '')}:${lineNumber + 1}`;
  inclusive.set(key, (inclusive.get(key) ?? 0) + subtree(node.id));
}
const rows = [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, Number(limitText ?? 30));
const windowText = windowAt >= 0 ? `, window ${fromS}-${toS} s` : '';
process.stdout.write(`${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s profiled${windowText}, ${totalHits} samples\n`);
for (const [key, hits] of rows) process.stdout.write(`${((hits / totalHits) * 100).toFixed(1).padStart(5)}%  ${key}\n`);
process.stdout.write('\ninclusive, project code:\n');
for (const [key, hits] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(limitText ?? 30))) {
  process.stdout.write(`${((hits / totalHits) * 100).toFixed(1).padStart(5)}%  ${key}\n`);
}
