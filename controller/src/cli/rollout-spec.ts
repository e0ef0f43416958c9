import { readFileSync } from 'node:fs';
import { Action } from '../../../shared/src/protocol.js';
import type { RolloutSpecInput, WaveSpec } from '../../../shared/src/rollout-api.js';
import { integer, list, str, type Values } from './args.js';
import type { OptionTable } from './command-spec.js';
import { CliError } from './context.js';
import { parseDurationSeconds } from './durations.js';

const WAVES = 'selection and waves';
const HEALTH = 'health and failure';
const REBOOTS = 'reboots';

/** The flags `rollout plan` and `rollout start` share; they become one RolloutSpec body. */
export const SPEC_OPTIONS = {
  hosts: { type: 'string', value: 'a,b', multiple: true, section: WAVES, description: 'only these hosts of the release, not all of them' },
  tags: { type: 'string', value: 't1,t2', multiple: true, section: WAVES, description: 'only hosts with these tags' },
  canary: { type: 'string', value: 'N', section: WAVES, description: 'the first N hosts form wave 1 on their own' },
  waves: {
    type: 'string',
    value: '10%,50%,100%',
    multiple: true,
    section: WAVES,
    description: 'cumulative waves (default: 100%): percentages, counts (2,5), hosts:a+b, tags:db',
  },
  concurrency: { type: 'string', value: 'N', section: WAVES, description: 'at most N hosts of a wave in flight at once' },
  'approve-before': {
    type: 'string',
    value: '2,3',
    multiple: true,
    section: WAVES,
    description: 'waves (counted from 1; the canary is wave 1) that wait for `shoal rollout approve`',
  },
  'max-failures': { type: 'string', value: 'N|P%', section: HEALTH, description: 'failures allowed before the rollout stops (default: 0)' },
  'min-sample': { type: 'string', value: 'N', section: HEALTH, description: 'with a percentage: finished hosts before it can trip' },
  bake: { type: 'string', value: '5m', section: HEALTH, description: 'time a wave must stay healthy before the next starts' },
  'health-deadline': { type: 'string', value: '10m', section: HEALTH, description: 'time a host has to report healthy' },
  'on-failure': { type: 'string', value: 'halt|rollback', section: HEALTH, description: 'what a tripped threshold does (default: halt)' },
  'offline-wait': { type: 'string', value: '5m', section: HEALTH, description: 'how long an unreachable host is waited for' },
  offline: { type: 'string', value: 'fail|skip', section: HEALTH, description: 'what a host still unreachable then counts as' },
  'progress-deadline': { type: 'string', value: '1h', section: HEALTH, description: 'halt when no host finishes for this long' },
  action: {
    type: 'string',
    value: 'safe-switch|switch|boot|dry-activate',
    section: HEALTH,
    description: 'how hosts activate the new system (default: safe-switch)',
  },
  'max-rebooting': { type: 'string', value: 'N', section: REBOOTS, description: 'at most N hosts of this rollout rebooting at once' },
  'activate-within-windows': {
    type: 'boolean',
    section: REBOOTS,
    description: 'hosts activate only while their maintenance windows are open, even without a reboot',
  },
  spec: { type: 'string', value: 'FILE', description: 'a rollout spec as JSON (flags override it)' },
} as const satisfies OptionTable;

/** "25%", "3", "hosts:a+b", "tags:db+cache" → a wave of the API. */
export function parseWave(item: string): WaveSpec {
  const text = item.trim();
  if (/^\d+(\.\d+)?%$/.test(text)) return text;
  if (/^\d+$/.test(text)) return Number(text);
  const match = /^(hosts|tags):(.+)$/.exec(text);
  if (match) {
    const names = match[2]!.split('+').map((s) => s.trim()).filter(Boolean);
    if (names.length > 0) return match[1] === 'hosts' ? { hosts: names } : { tags: names };
  }
  throw new CliError(`--waves item ${JSON.stringify(item)} must be a percentage (25%), a count (3), hosts:a+b or tags:t1+t2`, 2);
}

function readSpecFile(file: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(code ? `cannot read spec file ${file}: ${code}` : `spec file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CliError(`spec file ${file} must be a JSON object (a rollout spec)`);
  return raw as Record<string, unknown>;
}

function oneOf<T extends string>(flag: string, value: string, options: readonly T[]): T {
  if (!(options as readonly string[]).includes(value)) throw new CliError(`${flag} must be one of ${options.join(', ')}, got ${JSON.stringify(value)}`, 2);
  return value as T;
}

/**
 * Flags over the --spec file over the API's defaults. Only the form of each flag is checked here;
 * the controller judges the whole spec (and names what is wrong) for plan and start alike.
 */
export function specFromFlags(release: string, values: Values): RolloutSpecInput {
  const file = str(values.spec);
  const spec: Record<string, unknown> = file ? readSpecFile(file) : {};
  if (spec.release !== undefined && spec.release !== release) {
    throw new CliError(`spec file ${file} is for release ${JSON.stringify(spec.release)}, not ${JSON.stringify(release)}`, 2);
  }
  spec.release = release;
  const text = (name: string) => str(values[name]);
  const seconds = (name: string) => {
    const value = text(name);
    return value === undefined ? undefined : parseDurationSeconds(value, `--${name}`);
  };
  const set = (key: string, value: unknown) => {
    if (value !== undefined) spec[key] = value;
  };

  set('canary', text('canary') === undefined ? undefined : integer(text('canary')!, '--canary', 0));
  const waves = list(values.waves);
  if (waves.length > 0) spec.waves = waves.map(parseWave);
  else spec.waves ??= ['100%'];
  const hosts = list(values.hosts);
  const tags = list(values.tags);
  if (hosts.length > 0 || tags.length > 0) {
    spec.selector = { ...(hosts.length > 0 ? { hosts } : {}), ...(tags.length > 0 ? { tags } : {}) };
  }
  set('concurrency', text('concurrency') === undefined ? undefined : integer(text('concurrency')!, '--concurrency', 1));

  const maxFailures = text('max-failures');
  const minSample = text('min-sample');
  if (maxFailures !== undefined) {
    const percent = /^(\d+(?:\.\d+)?)%$/.exec(maxFailures.trim());
    if (percent) {
      spec.failureThreshold = { percent: Number(percent[1]), ...(minSample ? { minSample: integer(minSample, '--min-sample', 1) } : {}) };
    } else {
      if (minSample !== undefined) throw new CliError('--min-sample applies only to a percentage --max-failures (e.g. --max-failures 10% --min-sample 5)', 2);
      spec.failureThreshold = { count: integer(maxFailures, '--max-failures', 0) };
    }
  } else if (minSample !== undefined) {
    throw new CliError('--min-sample needs a percentage --max-failures (e.g. --max-failures 10% --min-sample 5)', 2);
  }

  set('bakeSeconds', seconds('bake'));
  set('healthDeadlineSeconds', seconds('health-deadline'));
  const approve = list(values['approve-before']);
  // People number waves from 1 (the canary, when there is one, is wave 1); the spec keeps 0-based positions.
  if (approve.length > 0) spec.approvalBefore = approve.map((item) => integer(item, '--approve-before', 1) - 1);
  set('onFailure', text('on-failure') === undefined ? undefined : oneOf('--on-failure', text('on-failure')!, ['halt', 'rollback'] as const));
  const offlineWait = seconds('offline-wait');
  const offlineThen = text('offline') === undefined ? undefined : oneOf('--offline', text('offline')!, ['fail', 'skip'] as const);
  if (offlineWait !== undefined || offlineThen !== undefined) {
    const before = (spec.offline ?? {}) as Record<string, unknown>;
    spec.offline = { ...before, ...(offlineWait !== undefined ? { waitSeconds: offlineWait } : {}), ...(offlineThen ? { then: offlineThen } : {}) };
  }
  set('progressDeadlineSeconds', seconds('progress-deadline'));
  set('maxRebooting', text('max-rebooting') === undefined ? undefined : integer(text('max-rebooting')!, '--max-rebooting', 1));
  if (values['activate-within-windows'] === true) spec.activateWithinWindows = true;
  set('action', text('action') === undefined ? undefined : oneOf('--action', text('action')!, Action.options));
  return spec as RolloutSpecInput;
}
