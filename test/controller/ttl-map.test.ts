import { describe, expect, it } from 'vitest';
import { TtlMap } from '../../controller/src/ttl-map.js';
import { ManualClock } from './helpers.js';

describe('TtlMap', () => {
  it('never returns an expired entry, and tells a taken expired entry from an unknown one', () => {
    const clock = new ManualClock();
    const map = new TtlMap<string, string>(clock, 1_000);
    map.set('a', 'host-a');
    map.set('b', 'host-b');
    expect(map.get('a')).toBe('host-a');
    clock.advance(1_000);
    expect(map.get('a')).toBeUndefined();
    expect(map.take('b')).toEqual({ value: 'host-b', expired: true });
    expect(map.take('b')).toBeUndefined();
    expect(map.size).toBe(0);
  });

  it('releases what an entry holds however it leaves', () => {
    const clock = new ManualClock();
    const forgotten: string[] = [];
    const map = new TtlMap<string, number>(clock, 1_000, (key) => forgotten.push(key));
    map.set('expired', 1);
    clock.advance(500);
    map.set('taken', 2);
    map.set('deleted', 3);
    map.set('oldest-live', 4);
    clock.advance(500);
    map.sweepExpired();
    map.take('taken');
    map.deleteWhere((value) => value === 3);
    map.deleteOldest();
    expect(forgotten).toEqual(['expired', 'taken', 'deleted', 'oldest-live']);
    expect(map.size).toBe(0);
  });
});
