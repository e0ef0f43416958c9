import { afterEach, describe, expect, it } from 'vitest';
import { localClock, localTime } from '../../../controller/src/cli/time.js';

describe('CLI times', () => {
  const zone = process.env.TZ;
  afterEach(() => {
    process.env.TZ = zone;
  });

  it('are local times with the zone a person reads on a terminal', () => {
    process.env.TZ = 'Europe/Berlin';
    expect(localTime('2030-07-01T13:05:09.123Z')).toBe('2030-07-01 15:05 CEST');
    expect(localTime('2030-01-01T13:05:09Z', { seconds: true })).toBe('2030-01-01 14:05:09 CET');
    process.env.TZ = 'America/New_York';
    expect(localTime('2030-07-01T13:05:09Z')).toBe('2030-07-01 09:05 EDT');
    expect(localClock('2030-07-01T13:05:09Z')).toBe('09:05:09');
    process.env.TZ = 'UTC';
    expect(localTime('2030-07-01T00:00:00Z')).toBe('2030-07-01 00:00 UTC');
  });
});
