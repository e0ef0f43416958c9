import { MaintenanceWindow, WEEKDAYS, type Weekday } from '../../../shared/src/windows.js';
import { CliError } from './context.js';

/**
 * Maintenance windows on the command line: "DAYS START-END [ZONE]", e.g. "sat,sun 02:00-05:00
 * Europe/Berlin", "mon-fri 22:00-04:00" (crosses midnight; UTC), "daily 01:00-03:00". DAYS is
 * day names (sun … sat), ranges of them (mon-fri, fri-mon) or "daily", comma-separated.
 */

function days(text: string, flag: string): Weekday[] {
  if (text === 'daily') return [...WEEKDAYS];
  const out = new Set<Weekday>();
  for (const part of text.split(',')) {
    const [from, to] = part.split('-') as [string, string | undefined];
    const a = WEEKDAYS.indexOf(from as Weekday);
    const b = to === undefined ? a : WEEKDAYS.indexOf(to as Weekday);
    if (a < 0 || b < 0) throw new CliError(`${flag}: ${JSON.stringify(part)} is not a day (sun mon tue wed thu fri sat), a range like mon-fri, or daily`, 2);
    for (let d = a; ; d = (d + 1) % 7) {
      out.add(WEEKDAYS[d]!);
      if (d === b) break;
    }
  }
  return WEEKDAYS.filter((d) => out.has(d));
}

export function parseWindow(text: string, flag = '--window'): MaintenanceWindow {
  const words = text.trim().split(/\s+/);
  const range = /^(\d\d:\d\d(?::\d\d)?)-(\d\d:\d\d(?::\d\d)?)$/.exec(words[1] ?? '');
  if (words.length < 2 || words.length > 3 || !range) {
    throw new CliError(`${flag} ${JSON.stringify(text)} must be "DAYS HH:MM-HH:MM [TIME-ZONE]", e.g. "sat,sun 02:00-05:00 Europe/Berlin"`, 2);
  }
  const parsed = MaintenanceWindow.safeParse({ days: days(words[0]!.toLowerCase(), flag), start: range[1], end: range[2], ...(words[2] ? { timeZone: words[2] } : {}) });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new CliError(`${flag} ${JSON.stringify(text)}: ${issue.path.join('.')} ${issue.message}`, 2);
  }
  return parsed.data;
}

export function formatWindow(window: MaintenanceWindow): string {
  const dayText = window.days.length === 7 ? 'daily' : window.days.join(',');
  return `${dayText} ${window.start}-${window.end} ${window.timeZone}`;
}

export function formatWindows(windows: readonly MaintenanceWindow[]): string {
  return windows.length === 0 ? 'always open' : windows.map(formatWindow).join('; ');
}
