import { duration, failure, rolloutEventText } from '../../../shared/src/event-text.js';
import type { HostEvent } from '../../../shared/src/operator-api.js';
import {
  FAILED_ROLLOUT_STATES,
  FINISHED_ROLLOUT_STATES,
  waveNumber,
  type FailureThreshold,
  type RebootPrediction,
  type RolloutList,
  type RolloutPlan,
  type RolloutSpec,
  type RolloutStatus,
} from '../../../shared/src/rollout-api.js';
import type { Paint } from './colour.js';
import { fit } from './format.js';
import { shortTime } from './release-format.js';
import { localClock } from './time.js';
import { failureBlock } from './failure-format.js';

const WIDTH = 80;

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Items wrapped to `width` (each but the last followed by `joiner`), later lines indented by `indent`. */
function wrap(items: readonly string[], joiner: string, indent: number, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const [i, item] of items.entries()) {
    const word = i < items.length - 1 ? `${item}${joiner}` : item;
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

const wrapList = (items: readonly string[], indent: number, width: number) => wrap(items, ',', indent, width);
/** Text wrapped at spaces; the first line may use all of `width`, the others `width - indent`. */
function wrapText(text: string, indent: number, width: number): string {
  const lead = /^ */.exec(text)![0];
  return lead + wrap(text.trim().split(/ +/), '', indent, width - Math.max(lead.length, indent));
}

export function thresholdText(threshold: FailureThreshold): string {
  return 'count' in threshold ? `at most ${threshold.count} failed` : `at most ${threshold.percent}% failed once ${threshold.minSample} finished`;
}

/** The settings of a spec that decide how the rollout behaves, in one or two lines. */
export function specSummary(spec: RolloutSpec): string {
  const parts = [
    `action ${spec.action}`,
    `concurrency ${spec.concurrency ?? 'unlimited'}`,
    thresholdText(spec.failureThreshold),
    `bake ${duration(spec.bakeSeconds)}`,
    `health deadline ${duration(spec.healthDeadlineSeconds)}`,
    `on failure ${spec.onFailure}`,
    `offline: wait ${duration(spec.offline.waitSeconds)} then ${spec.offline.then}`,
    ...(spec.progressDeadlineSeconds === null ? [] : [`progress deadline ${duration(spec.progressDeadlineSeconds)}`]),
    // Specs stored before these options have neither.
    ...(spec.maxRebooting ? [`at most ${spec.maxRebooting} rebooting`] : []),
    ...(spec.activateWithinWindows ? ['activates only within windows'] : []),
  ];
  return wrap(parts, ' ·', 0, WIDTH);
}

function waveLabel(wave: { index: number; canary: boolean; needsApproval: boolean }): string {
  return [wave.canary ? 'canary' : '', wave.needsApproval ? 'approval first' : ''].filter(Boolean).join(', ');
}

/** The dry-run plan: who goes in which wave, in order, and where a human must approve. */
export function planLines(plan: RolloutPlan, spec: RolloutSpec | null, paint: Paint): string {
  const total = plan.waves.reduce((n, w) => n + w.hosts.length, 0);
  const lines = [paint.bold(`release ${plan.release}: ${plural(total, 'host')} in ${plural(plan.waves.length, 'wave')}`)];
  if (spec) lines.push(paint.dim(specSummary(spec)));
  lines.push('');
  // "wave 10  canary, approval first  120 hosts  " is 44 columns; the host names get the rest.
  const indent = 8 + 22 + 2 + 9 + 2;
  for (const wave of plan.waves) {
    const label = waveLabel(wave);
    const head = `${`wave ${waveNumber(wave.index)}`.padEnd(8)}${fit(label, 22)}  ${plural(wave.hosts.length, 'host').padEnd(9)}  `;
    const coloured = wave.canary || wave.needsApproval ? head.replace(label, paint.yellow(label)) : head;
    lines.push(`${coloured}${wrapList(wave.hosts, indent, WIDTH - indent)}`.trimEnd());
  }
  const gates = plan.waves.filter((w) => w.needsApproval).map((w) => waveNumber(w.index));
  if (gates.length > 0) lines.push('', `waits for \`shoal rollout approve\` before wave${gates.length === 1 ? '' : 's'} ${gates.join(', ')}`);
  if (plan.reboots) lines.push('', ...rebootLines(plan.reboots, paint));
  return `${lines.join('\n')}\n`;
}

/** "2 hosts will reboot: db-1 (kernel, initrd), …" wrapped to the width, then the hosts whose answer is not known. */
function rebootLines(reboots: readonly RebootPrediction[], paint: Paint): string[] {
  const rebooting = reboots.filter((r) => r.prediction === 'reboot');
  const unknown = reboots.filter((r) => r.prediction === 'unknown');
  if (unknown.length === reboots.length) return [paint.dim('reboots not known: the release has no system facts')];
  const lines = [
    rebooting.length === 0
      ? `no host will reboot (${plural(reboots.length - unknown.length, 'host')} switch live)`
      : paint.yellow(wrapText(`${plural(rebooting.length, 'host')} will reboot: ${rebooting.map((r) => `${r.host} (${r.reasons.join(', ')})`).join(', ')}`, 2, WIDTH)),
  ];
  if (unknown.length > 0) lines.push(paint.dim(wrapText(`reboot not known (no system facts): ${unknown.map((r) => r.host).join(', ')}`, 2, WIDTH)));
  return lines;
}

const TERMINAL = new Set<string>(FINISHED_ROLLOUT_STATES);
const FAILED = new Set<string>([...FAILED_ROLLOUT_STATES, 'rolling-back']);

export function isTerminal(state: string): boolean {
  return TERMINAL.has(state);
}

export function stateColour(state: string, paint: Paint): string {
  if (state === 'succeeded') return paint.green(state);
  if (FAILED.has(state)) return paint.red(state);
  if (state === 'paused' || state === 'waiting-approval') return paint.yellow(state);
  return state;
}

type StatusWave = RolloutStatus['waves'][number];

function waveState(status: RolloutStatus, wave: StatusWave, bakeRemaining: number | null): string {
  const c = wave.counts;
  const size = c.pending + c.inProgress + c.healthy + c.failed + c.skipped;
  const done = c.pending === 0 && c.inProgress === 0;
  if (wave.index < status.waveIndex || (status.state === 'succeeded' && done)) return size === 0 ? 'empty' : 'done';
  if (wave.index > status.waveIndex) return wave.needsApproval && !wave.approved ? 'needs approval' : 'pending';
  switch (status.state) {
    case 'waiting-approval':
      return 'waiting approval';
    case 'paused':
      return 'paused';
    case 'running':
      return status.wavePhase === 'baking' ? `baking, ${duration(bakeRemaining ?? 0)} left` : 'deploying';
    default:
      return status.state;
  }
}

const COLUMNS: Array<[string, number]> = [
  ['WAVE', 16],
  ['PENDING', 7],
  ['IN PROG', 7],
  ['HEALTHY', 7],
  ['FAILED', 6],
  ['SKIPPED', 7],
  ['STATE', 16],
];

function row(cells: string[]): string {
  return cells.map((cell, i) => (i === 0 || i === 6 ? fit(cell, COLUMNS[i]![1]) : cell.padStart(COLUMNS[i]![1]))).join('  ').trimEnd();
}

function failureLine(status: RolloutStatus): string {
  const t = status.failureThreshold;
  if ('count' in t) return `failures ${status.failures} (max ${t.count})`;
  const percent = status.finished === 0 ? 0 : (status.failures / status.finished) * 100;
  return `failures ${status.failures} of ${status.finished} finished, ${percent.toFixed(1)}% (max ${t.percent}% once ${t.minSample} finished)`;
}

/**
 * The whole picture of one rollout: state, failure threshold, a row per wave, then every failed
 * host with its reason. `bakeRemaining` lets `watch` count the bake down between updates.
 */
export function statusLines(status: RolloutStatus, paint: Paint, bakeRemaining = status.bakeRemainingSeconds): string {
  const total = status.waves.reduce((n, w) => n + w.hosts.length, 0);
  const lines = [
    `rollout ${paint.bold(status.id)} · release ${status.release} · ${stateColour(status.state, paint)}`,
    `wave ${status.wave} of ${status.waves.length} · ${failureLine(status)} · ${status.finished}/${total} finished`,
    `started ${shortTime(status.createdAt)} by ${status.createdBy}${status.retryOf ? ` · retries ${status.retryOf}` : ''}${status.finishedAt ? ` · ended ${shortTime(status.finishedAt)}` : ''}`,
  ];
  if (status.reason) lines.push(wrapText(`reason: ${status.reason}`, 2, WIDTH));
  lines.push('', row(COLUMNS.map(([title]) => title)));
  for (const wave of status.waves) {
    const c = wave.counts;
    const label = `${wave.number}${wave.canary ? ' canary' : ''}${wave.needsApproval ? (wave.approved ? ' approved' : ' approval') : ''}`;
    const state = waveState(status, wave, bakeRemaining);
    const cells = row([label, String(c.pending), String(c.inProgress), String(c.healthy), String(c.failed), String(c.skipped), state]);
    lines.push(c.failed > 0 ? paint.red(cells) : wave.index === status.waveIndex && !isTerminal(status.state) ? paint.bold(cells) : cells);
  }
  const hosts = status.waves.flatMap((w) => w.hosts);
  const failed = hosts.filter((h) => h.state === 'failed' || h.state === 'skipped');
  if (failed.length > 0) {
    lines.push('', 'failed or skipped hosts:');
    for (const host of failed) {
      // With the failing command shown below, the agent's short reason says enough on the host's line.
      const short = host.failure?.failure && host.failure.reason ? `${host.failure.phase}: ${host.failure.reason}` : null;
      const reason = host.state === 'skipped' ? `skipped: ${host.reason ?? ''}` : failure(short ?? host.reason ?? 'no reason recorded');
      lines.push(wrapText(`  ${host.host}: ${reason}`, 4, WIDTH));
      lines.push(...failureBlock(host.failure, paint));
    }
  }
  // A paused host holds its wave up: say which, and how to let it go.
  const paused = hosts.filter((h) => h.paused && h.state === 'pending');
  if (paused.length > 0 && !isTerminal(status.state)) {
    lines.push('', wrapText(`paused hosts, waiting in their wave until resumed (shoal host resume NAME): ${paused.map((h) => h.host).join(', ')}`, 2, WIDTH));
  }
  const rolledBack = hosts.filter((h) => h.rollbackState !== null);
  if (rolledBack.length > 0) {
    lines.push('', 'rollback:');
    lines.push(`  ${wrapList(rolledBack.map((h) => `${h.host} ${h.rollbackState}`), 2, WIDTH - 2)}`);
  }
  if (status.state === 'waiting-approval') lines.push('', paint.yellow(`waiting: run \`shoal rollout approve ${status.id}\` to start wave ${status.wave} of ${status.waves.length}`));
  return `${lines.join('\n')}\n`;
}

export function rolloutListTable(rollouts: RolloutList['rollouts'], paint: Paint): string {
  const widths = [11, 12, 16, 5, 5, 21];
  const line = (cells: string[], state?: string) =>
    cells
      .map((cell, i) => (i === 2 && state ? stateColour(state, paint) + ' '.repeat(Math.max(0, widths[i]! - state.length)) : fit(cell, widths[i]!)))
      .join('  ')
      .trimEnd();
  const lines = [line(['ID', 'RELEASE', 'STATE', 'WAVE', 'HOSTS', 'CREATED'])];
  for (const r of rollouts) {
    lines.push(line([r.id, r.release, r.state, `${r.wave}/${r.waves}`, String(r.hosts), shortTime(r.createdAt)], r.state));
  }
  if (rollouts.length === 0) lines.push('(no rollouts)');
  return `${lines.join('\n')}\n`;
}

/** One audit event as one line, for `watch` on a non-terminal and for the tail of the live view. */
export function eventLine(event: HostEvent): string {
  return `${localClock(event.at)}  ${rolloutEventText(event)}`;
}


export { duration, rolloutEventText };
