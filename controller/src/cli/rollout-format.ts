import type { HostEvent } from '../../../shared/src/operator-api.js';
import type { FailureThreshold, RolloutList, RolloutPlan, RolloutSpec, RolloutStatus } from '../../../shared/src/rollout-api.js';
import type { Paint } from './colour.js';
import { fit } from './format.js';
import { shortTime } from './release-format.js';

const WIDTH = 80;

/** 330 → "5m30s": bake and deadline times as an operator says them. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? `${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600) ? `${Math.floor((s % 86400) / 3600)}h` : ''}`;
}

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
    const head = `${`wave ${wave.index}`.padEnd(8)}${fit(label, 22)}  ${plural(wave.hosts.length, 'host').padEnd(9)}  `;
    const coloured = wave.canary || wave.needsApproval ? head.replace(label, paint.yellow(label)) : head;
    lines.push(`${coloured}${wrapList(wave.hosts, indent, WIDTH - indent)}`.trimEnd());
  }
  const gates = plan.waves.filter((w) => w.needsApproval).map((w) => w.index);
  if (gates.length > 0) lines.push('', `waits for \`shoal rollout approve\` before wave${gates.length === 1 ? '' : 's'} ${gates.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

/** Reasons from reports start with the phase ("failed: …", "rolled-back: …"); others get "failed: ". */
function failure(reason: string): string {
  return /^(failed|rolled-back|refused)\b/.test(reason) ? reason : `failed: ${reason}`;
}

const TERMINAL = new Set(['succeeded', 'halted', 'rolled-back', 'aborted']);

export function isTerminal(state: string): boolean {
  return TERMINAL.has(state);
}

export function stateColour(state: string, paint: Paint): string {
  if (state === 'succeeded') return paint.green(state);
  if (state === 'halted' || state === 'rolled-back' || state === 'aborted' || state === 'rolling-back') return paint.red(state);
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
    `wave ${status.waveIndex} of ${status.waves.length - 1} · ${failureLine(status)} · ${status.finished}/${total} finished`,
    `started ${shortTime(status.createdAt)} by ${status.createdBy}${status.finishedAt ? ` · ended ${shortTime(status.finishedAt)}` : ''}`,
  ];
  if (status.reason) lines.push(wrapText(`reason: ${status.reason}`, 2, WIDTH));
  lines.push('', row(COLUMNS.map(([title]) => title)));
  for (const wave of status.waves) {
    const c = wave.counts;
    const label = `${wave.index}${wave.canary ? ' canary' : ''}${wave.needsApproval ? (wave.approved ? ' approved' : ' approval') : ''}`;
    const state = waveState(status, wave, bakeRemaining);
    const cells = row([label, String(c.pending), String(c.inProgress), String(c.healthy), String(c.failed), String(c.skipped), state]);
    lines.push(c.failed > 0 ? paint.red(cells) : wave.index === status.waveIndex && !isTerminal(status.state) ? paint.bold(cells) : cells);
  }
  const hosts = status.waves.flatMap((w) => w.hosts);
  const failed = hosts.filter((h) => h.state === 'failed' || h.state === 'skipped');
  if (failed.length > 0) {
    lines.push('', 'failed or skipped hosts:');
    for (const host of failed) {
      const reason = host.state === 'skipped' ? `skipped: ${host.reason ?? ''}` : failure(host.reason ?? 'no reason recorded');
      lines.push(wrapText(`  ${host.host}: ${reason}`, 4, WIDTH));
    }
  }
  const rolledBack = hosts.filter((h) => h.rollbackState !== null);
  if (rolledBack.length > 0) {
    lines.push('', 'rollback:');
    lines.push(`  ${wrapList(rolledBack.map((h) => `${h.host} ${h.rollbackState}`), 2, WIDTH - 2)}`);
  }
  if (status.state === 'waiting-approval') lines.push('', paint.yellow(`waiting: run \`shoal rollout approve ${status.id}\` to start wave ${status.waveIndex}`));
  return `${lines.join('\n')}\n`;
}

export function rolloutListTable(rollouts: RolloutList['rollouts'], paint: Paint): string {
  const widths = [11, 14, 16, 6, 5, 17];
  const line = (cells: string[], state?: string) =>
    cells
      .map((cell, i) => (i === 2 && state ? stateColour(state, paint) + ' '.repeat(Math.max(0, widths[i]! - state.length)) : fit(cell, widths[i]!)))
      .join('  ')
      .trimEnd();
  const lines = [line(['ID', 'RELEASE', 'STATE', 'WAVE', 'HOSTS', 'CREATED'])];
  for (const r of rollouts) {
    lines.push(line([r.id, r.release, r.state, `${r.waveIndex}/${r.waves - 1}`, String(r.hosts), shortTime(r.createdAt)], r.state));
  }
  if (rollouts.length === 0) lines.push('(no rollouts)');
  return `${lines.join('\n')}\n`;
}

/** One audit event as one line, for `watch` on a non-terminal and for the tail of the live view. */
export function eventLine(event: HostEvent): string {
  const d = event.data as Record<string, unknown>;
  const time = event.at.slice(11, 19);
  const wave = (key = 'waveIndex') => `wave ${String(d[key] ?? '?')}`;
  const by = typeof d.actor === 'string' ? ` by ${d.actor}` : '';
  const host = event.host ?? '';
  let text: string;
  switch (event.kind) {
    case 'rollout-started':
      text = `started: waves of ${(d.waves as number[] | undefined)?.join(', ') ?? '?'} hosts${by}${(d.preflight as { skipped?: boolean } | null | undefined)?.skipped ? ' (cache preflight failed; skipped)' : ''}`;
      break;
    case 'rollout-wave-started':
      text = `${wave()} started${d.canary ? ' (canary)' : ''}: ${plural((d.hosts as string[] | undefined)?.length ?? 0, 'host')}`;
      break;
    case 'rollout-wave-baking':
      text = `${wave()} healthy, baking for ${duration(Number(d.bakeSeconds ?? 0))}`;
      break;
    case 'rollout-waiting-approval':
      text = `${wave()} waits for approval`;
      break;
    case 'rollout-approved':
      text = `${wave()} approved${by}`;
      break;
    case 'rollout-paused':
      text = `paused${by}`;
      break;
    case 'rollout-resumed':
      text = `resumed${by}`;
      break;
    case 'rollout-host-issued':
      text = `${host}: v${String(d.version)} issued (${wave('wave')})`;
      break;
    case 'rollout-host-healthy':
      text = `${host}: healthy${d.rollback ? ' on its previous system (rollback)' : ''}`;
      break;
    case 'rollout-host-failed':
      text = `${host}: ${d.rollback ? 'rollback ' : ''}${failure(String(d.reason ?? ''))}`;
      break;
    case 'rollout-host-skipped':
      text = `${host}: skipped: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-rolling-back':
      text = `rolling back ${plural(Number(d.hosts ?? 0), 'host')}: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-rolled-back':
      text = `rolled back${(d.failed as string[] | undefined)?.length ? `; failed on ${(d.failed as string[]).join(', ')}` : ''}`;
      break;
    case 'rollout-halted':
      text = `halted: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-aborted':
      text = `aborted: ${String(d.reason ?? '')}`;
      break;
    case 'rollout-succeeded':
      text = 'succeeded';
      break;
    default:
      text = `${event.kind}${host ? ` ${host}` : ''}`;
  }
  return `${time}  ${text}`;
}
