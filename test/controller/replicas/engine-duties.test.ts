import { afterEach, describe, expect, it } from 'vitest';
import { EngineDuties, type Duty } from '../../../controller/src/replicas/engine-duties.js';
import { silentLogger } from '../../../shared/src/logger.js';
import { replicaDatabasePerTest } from '../postgres-database.js';
import { terminateSessions } from './pg-admin.js';

/** A duty that records, per replica, when it runs. */
function recorder(replica: string, log: string[]): Duty {
  return {
    name: 'recorder',
    async start() {
      log.push(`${replica} started`);
      return async () => void log.push(`${replica} stopped`);
    },
  };
}

describe('engine duties run on exactly one replica', () => {
  const shared = replicaDatabasePerTest();
  const duties: EngineDuties[] = [];
  // Registered after the shared hooks, so it runs before them: duties stop before their stores close.
  afterEach(async () => {
    await Promise.all(duties.splice(0).map((d) => d.close()));
  });

  it('starts them on the lease holder only; a lost lease stops them before any replica starts them again', async () => {
    const log: string[] = [];
    const replica = async (name: string) => {
      const store = await shared.replica(name);
      const d = new EngineDuties(store.engineLease({ pollMs: 100 }), [recorder(name, log)], silentLogger());
      duties.push(d);
      await d.start();
      return d;
    };
    const a = await replica('a');
    const b = await replica('b');
    expect(a.held).toBe(true);
    expect(b.held).toBe(false);
    expect(log).toEqual(['a started']);

    // The holder's lease session dies (a network cut): whichever replica wins the lock next runs them, a itself included.
    expect(await terminateSessions(shared.database.server.adminUrl, 'a', 'lease')).toBe(1);
    await expect.poll(() => log.length).toBe(3);
    expect(log.slice(0, 2)).toEqual(['a started', 'a stopped']);
    expect(log[2]).toMatch(/^(a|b) started$/);
    expect([a.held, b.held].filter(Boolean)).toHaveLength(1);
  });

  it('gives the lease up on close, so another replica takes over at once', async () => {
    const log: string[] = [];
    const open = async (name: string) => {
      const store = await shared.replica(name);
      const d = new EngineDuties(store.engineLease({ pollMs: 100 }), [recorder(name, log)], silentLogger());
      await d.start();
      return d;
    };
    const a = await open('a');
    const b = await open('b');
    duties.push(b);
    await a.close();
    await expect.poll(() => b.held).toBe(true);
    expect(log).toEqual(['a started', 'a stopped', 'b started']);
  });
});
