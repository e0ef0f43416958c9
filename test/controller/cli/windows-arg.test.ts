import { describe, expect, it } from 'vitest';
import { formatWindow, parseWindow } from '../../../controller/src/cli/windows-arg.js';

describe('--window "DAYS HH:MM-HH:MM [ZONE]"', () => {
  it('reads day lists, ranges (also across the week’s end), daily, and a time zone (UTC by default)', () => {
    expect(parseWindow('sat,sun 02:00-05:00 Europe/Berlin')).toEqual({ days: ['sun', 'sat'], start: '02:00', end: '05:00', timeZone: 'Europe/Berlin' });
    expect(parseWindow('mon-fri 22:00-04:00')).toEqual({ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '22:00', end: '04:00', timeZone: 'UTC' });
    expect(parseWindow('fri-mon 01:00-02:00').days).toEqual(['sun', 'mon', 'fri', 'sat']);
    expect(formatWindow(parseWindow('daily 01:00:30-03:00'))).toBe('daily 01:00:30-03:00 UTC');
  });

  it('names what is wrong', () => {
    expect(() => parseWindow('someday 02:00-05:00')).toThrow(/"someday" is not a day/);
    expect(() => parseWindow('sat 02:00')).toThrow(/must be "DAYS HH:MM-HH:MM \[TIME-ZONE\]"/);
    expect(() => parseWindow('sat 02:00-25:00')).toThrow(/end must be HH:MM/);
    expect(() => parseWindow('sat 02:00-05:00 Mars/Olympus')).toThrow(/timeZone must be an IANA time zone/);
  });
});
