import * as z from 'zod';

/**
 * Maintenance windows: days of the week and a time range in a stated time zone. A range whose
 * end is not after its start crosses midnight: {days: ['fri'], start: '22:00', end: '04:00'} is
 * open from Friday 22:00 to Saturday 04:00 (the day names the day the window opens). Times may
 * carry seconds ("22:00:30"). One module decides "open now?" and "opens when?" for everyone.
 */

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const TIME = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;

function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const MaintenanceWindow = z
  .strictObject({
    days: z.array(z.enum(WEEKDAYS)).min(1, 'must name at least one day (sun … sat)'),
    start: z.string().regex(TIME, 'must be HH:MM or HH:MM:SS (24 h)'),
    end: z.string().regex(TIME, 'must be HH:MM or HH:MM:SS (24 h)'),
    timeZone: z.string().refine(validTimeZone, { message: 'must be an IANA time zone such as "Europe/Berlin" or "UTC"' }).default('UTC'),
  });
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

function seconds(time: string): number {
  const [, h, m, s] = TIME.exec(time)!;
  return Number(h) * 3600 + Number(m) * 60 + Number(s ?? 0);
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Weekday and second of the day at `at` in `zone`. */
function local(at: Date, zone: string): { day: number; second: number } {
  let format = formatters.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: zone, weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
    formatters.set(zone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
  const day = WEEKDAYS.indexOf(String(parts.weekday).toLowerCase().slice(0, 3) as Weekday);
  return { day, second: Number(parts.hour) * 3600 + Number(parts.minute) * 60 + Number(parts.second) };
}

export function windowOpen(window: MaintenanceWindow, at: Date): boolean {
  const { day, second } = local(at, window.timeZone);
  const start = seconds(window.start);
  const end = seconds(window.end);
  const on = (d: number) => window.days.includes(WEEKDAYS[(d + 7) % 7]!);
  if (start < end) return on(day) && second >= start && second < end;
  // Crosses midnight: the evening part on a listed day, the morning part on the day after one.
  return (on(day) && second >= start) || (on(day - 1) && second < end);
}

/** No windows: always open. */
export function anyWindowOpen(windows: readonly MaintenanceWindow[], at: Date): boolean {
  return windows.length === 0 || windows.some((w) => windowOpen(w, at));
}

/** Groups of windows (one per source: a host's, or each of its tags'): open while every group has an open window. */
export function allGroupsOpen(groups: readonly (readonly MaintenanceWindow[])[], at: Date): boolean {
  return groups.every((windows) => anyWindowOpen(windows, at));
}

/**
 * When a window opens next (at or after `at`), to the second; null when none opens within 8
 * days (cannot happen for a valid window, but the search is bounded). Steps a minute at a time
 * and then seconds, so it stays right across daylight-saving changes without date arithmetic.
 */
export function nextOpening(windows: readonly MaintenanceWindow[], at: Date): Date | null {
  return nextOpeningOfAll([windows], at);
}

/** nextOpening for groups: when all are open at once; null when they do not overlap within 8 days. */
export function nextOpeningOfAll(groups: readonly (readonly MaintenanceWindow[])[], at: Date): Date | null {
  if (allGroupsOpen(groups, at)) return at;
  const start = Math.floor(at.getTime() / 1000) * 1000;
  for (let t = start; t < start + 8 * 86_400_000; t += 60_000) {
    if (!allGroupsOpen(groups, new Date(t + 60_000))) continue;
    for (let s = t + 1000; s <= t + 60_000; s += 1000) if (allGroupsOpen(groups, new Date(s))) return new Date(s);
  }
  return null;
}
