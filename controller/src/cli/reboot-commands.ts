import { HostStatus, OperatorRoutes } from '../../../shared/src/operator-api.js';
import { RebootPolicy } from '../../../shared/src/reboot.js';
import { HostRebootSettings, TagRebootSettings, TagRebootSettingsList, type SetRebootSettingsRequest } from '../../../shared/src/reboot-settings.js';
import { integer, json, str } from './args.js';
import type { OptionTable, Parsed, Values } from './command-spec.js';
import { OperatorClient } from './client.js';
import { CliError, type CliIo } from './context.js';
import { formatWindows, parseWindow } from './windows-arg.js';

/** Reboot policy, maintenance windows and reboot locks on the controller: per host, per tag, and `host show`. */

/** The options `host set-reboot` and `tag set-reboot` share. */
export const SETTING_OPTIONS = {
  policy: { type: 'string', value: 'P', description: 'never, when-needed, always, or inherit (unset here: a host then takes its tags\', the strictest of them)' },
  window: {
    type: 'string',
    value: '"DAYS HH:MM-HH:MM [ZONE]"',
    multiple: true,
    description: 'a maintenance window, e.g. "sat,sun 02:00-05:00 Europe/Berlin", "mon-fri 22:00-04:00" (crosses midnight; UTC by default), "daily 01:00-03:00"',
  },
  windows: { type: 'string', value: 'inherit|always', description: 'inherit: take the tags\' windows (unset); always: no window, always open' },
} as const satisfies OptionTable;

/** The flags → a PUT body; only what was given changes. */
function settingsFrom(values: Values, forTag: boolean): SetRebootSettingsRequest {
  const body: SetRebootSettingsRequest = {};
  const policy = str(values.policy);
  if (policy !== undefined) {
    if (policy === 'inherit') body.policy = null;
    else if (RebootPolicy.safeParse(policy).success) body.policy = policy as RebootPolicy;
    else throw new CliError(`--policy must be one of ${[...RebootPolicy.options, 'inherit'].join(', ')}, got ${JSON.stringify(policy)}`, 2);
  }
  // Not list(): a window's days are comma-separated themselves ("sat,sun 02:00-05:00").
  const windows = ((values.window as string[] | undefined) ?? []).filter((w) => w.trim() !== '');
  const windowsWord = str(values.windows);
  if (windows.length > 0 && windowsWord !== undefined) throw new CliError('give either --window (one or more) or --windows inherit|always, not both', 2);
  if (windows.length > 0) body.windows = windows.map((w) => parseWindow(w));
  else if (windowsWord === 'inherit') body.windows = null;
  else if (windowsWord === 'always') body.windows = [];
  else if (windowsWord !== undefined) throw new CliError(`--windows must be inherit (take the ${forTag ? 'default' : 'tags\''}) or always (no window: always open), got ${JSON.stringify(windowsWord)}`, 2);
  if (forTag) {
    const max = str(values['max-rebooting']);
    if (max !== undefined) body.maxRebooting = max === 'none' ? null : integer(max, '--max-rebooting', 1);
  }
  if (Object.keys(body).length === 0) {
    throw new CliError(`nothing to set: give --policy, --window or --windows${forTag ? ', or --max-rebooting' : ''}`, 2);
  }
  return body;
}

const shown = (value: string | null, from: string | null) => (value === null ? 'not set (the agent decides; its default: never)' : `${value}${from ? ` (from ${from})` : ''}`);

export function rebootLines(view: HostRebootSettings): string[] {
  const { effective } = view;
  const windows =
    effective.windows === null
      ? 'not set (the agent decides; its default: always open)'
      : effective.windows.map((group, i) => `${formatWindows(group)} (from ${effective.windowsFrom[i]})`).join(' AND ');
  const opens = effective.windows === null ? '' : effective.windowsOpenAt === null ? '  — never open together within a week' : `  — open${effective.windowsOpenAt > new Date().toISOString() ? `s ${effective.windowsOpenAt}` : ' now'}`;
  const lines = [`reboot policy: ${shown(effective.policy, effective.policyFrom)}`, `windows: ${windows}${opens}`];
  if (effective.locks.length > 0) lines.push(`reboot locks: ${effective.locks.map((l) => `at most ${l.maxRebooting} of tag ${l.tag}`).join(', ')}`);
  return lines;
}

/** `shoal host show NAME`: one host, its desired state and its reboot settings. */
export async function hostShow({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const client = OperatorClient.from(values, io);
  const name = positionals[0]!;
  const status = await client.call('GET', OperatorRoutes.host(name), HostStatus);
  const reboot = await client.call('GET', OperatorRoutes.hostReboot(name), HostRebootSettings);
  if (values.json) return json(io, { ...status, reboot });
  const lines = [
    `${status.name}${status.tags.length ? `  tags ${status.tags.join(',')}` : ''}${status.paused ? '  (paused)' : ''}`,
    `phase: ${status.phase ?? 'none reported'}${status.reportedVersion ? ` (manifest ${status.reportedVersion})` : ''}`,
    `running: ${status.currentSystem ?? 'unknown'}`,
    `desired: ${status.desired ? `${status.desired.storePath} (manifest ${status.desired.version}${status.desired.rolloutId ? `, rollout ${status.desired.rolloutId}` : ''})` : 'nothing set'}`,
    ...rebootLines(reboot),
  ];
  io.stdout(`${lines.join('\n')}\n`);
}

/** `shoal host set-reboot NAME …`: the host's own settings, over its tags'. */
export async function hostSetReboot({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const body = settingsFrom(values, false);
  const view = await OperatorClient.from(values, io).call('PUT', OperatorRoutes.hostReboot(positionals[0]!), HostRebootSettings, body);
  if (values.json) return json(io, view);
  io.stdout(`${view.host}: ${rebootLines(view).join('\n  ')}\n(signed into its next manifest: the next rollout, shoal set, or renewal)\n`);
}

function tagLine(t: TagRebootSettings): string {
  const parts = [
    `policy ${t.policy ?? '-'}`,
    `windows ${t.windows === null ? '-' : formatWindows(t.windows)}`,
    `max rebooting ${t.maxRebooting ?? '-'}`,
  ];
  return `${t.tag}: ${parts.join(', ')}`;
}

/** `shoal tag set-reboot TAG …`: settings for every host with the tag. */
export async function tagSetReboot({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const body = settingsFrom(values, true);
  const tag = await OperatorClient.from(values, io).call('PUT', OperatorRoutes.tagReboot(positionals[0]!), TagRebootSettings, body);
  if (values.json) return json(io, tag);
  io.stdout(`${tagLine(tag)}\n`);
}

/** `shoal tag list`: every tag with reboot settings. */
export async function tagList({ values }: Parsed, io: CliIo): Promise<void> {
  const answer = await OperatorClient.from(values, io).call('GET', OperatorRoutes.tagsReboot, TagRebootSettingsList);
  if (values.json) return json(io, answer);
  io.stdout(answer.tags.length === 0 ? '(no tag has reboot settings)\n' : `${answer.tags.map(tagLine).join('\n')}\n`);
}
