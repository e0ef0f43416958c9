import { describe, expect, it } from 'vitest';
import { anyWindowOpen, MaintenanceWindow, nextOpening, windowOpen } from '../../shared/src/windows.js';

/** Maintenance windows, judged at chosen instants (no waiting for real hours). */
describe('maintenance windows', () => {
  const night = MaintenanceWindow.parse({ days: ['fri'], start: '22:00', end: '04:00', timeZone: 'Europe/Berlin' });

  it('a range that crosses midnight is open from the listed day into the next morning, in its time zone', () => {
    // Friday 2030-01-04 22:30 in Berlin is 21:30 UTC (CET, +1).
    expect(windowOpen(night, new Date('2030-01-04T21:30:00Z'))).toBe(true);
    // Saturday 03:59:59 Berlin: still open; 04:00 closed.
    expect(windowOpen(night, new Date('2030-01-05T02:59:59Z'))).toBe(true);
    expect(windowOpen(night, new Date('2030-01-05T03:00:00Z'))).toBe(false);
    // Friday 21:59 Berlin, and Thursday night: closed.
    expect(windowOpen(night, new Date('2030-01-04T20:59:00Z'))).toBe(false);
    expect(windowOpen(night, new Date('2030-01-03T21:30:00Z'))).toBe(false);
    // Friday early morning belongs to Thursday's night, which is not listed.
    expect(windowOpen(night, new Date('2030-01-04T01:00:00Z'))).toBe(false);
  });

  it('says when the next window opens, across days and daylight saving', () => {
    expect(nextOpening([night], new Date('2030-01-01T12:00:00Z'))!.toISOString()).toBe('2030-01-04T21:00:00.000Z');
    // In summer Berlin is UTC+2: Friday 2030-07-05 22:00 local is 20:00 UTC.
    expect(nextOpening([night], new Date('2030-07-01T12:00:00Z'))!.toISOString()).toBe('2030-07-05T20:00:00.000Z');
    const open = new Date('2030-01-04T21:30:00Z');
    expect(nextOpening([night], open)).toBe(open);
  });

  it('opens to the second, and no windows means always open', () => {
    const w = MaintenanceWindow.parse({ days: ['mon'], start: '10:00:30', end: '10:05' });
    expect(windowOpen(w, new Date('2030-01-07T10:00:29Z'))).toBe(false);
    expect(windowOpen(w, new Date('2030-01-07T10:00:30Z'))).toBe(true);
    expect(nextOpening([w], new Date('2030-01-07T09:59:00Z'))!.toISOString()).toBe('2030-01-07T10:00:30.000Z');
    expect(anyWindowOpen([], new Date())).toBe(true);
  });

  it('refuses bad windows with a message naming the field', () => {
    const result = MaintenanceWindow.safeParse({ days: ['funday'], start: '25:00', end: '04:00', timeZone: 'Mars/Olympus' });
    expect(result.success).toBe(false);
    const paths = result.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(paths.some((p) => p.startsWith('start: must be HH:MM'))).toBe(true);
    expect(paths.some((p) => p.startsWith('timeZone: must be an IANA time zone'))).toBe(true);
    expect(paths.some((p) => p.startsWith('days.0'))).toBe(true);
  });
});
