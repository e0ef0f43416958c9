import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../../controller/src/db/store.js';
import { LeaseNotHeld } from '../../../controller/src/db/store-errors.js';
import { LabProcess } from '../../lab/lab-process.js';
import { postgresTestDatabase, stopPostgresTestServer, type PostgresTestDatabase } from '../postgres-database.js';
import { terminateSessions } from './pg-admin.js';

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const HOLDER = fileURLToPath(new URL('./lease-holder.ts', import.meta.url));

async function hostNames(store: Store): Promise<string[]> {
  const rows = await store.db.select({ name: store.t.hosts.name }).from(store.t.hosts).orderBy(store.t.hosts.name);
  return rows.map((row) => row.name);
}

describe('engine lease on PostgreSQL', () => {
  let database: PostgresTestDatabase;
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await database.drop();
  });
  afterAll(async () => {
    await stopPostgresTestServer();
  });

  async function replica(replicaId: string): Promise<Store> {
    const store = await openStore({ database: database.url, replicaId });
    cleanups.push(() => store.close());
    return store;
  }

  it('passes to another replica when the holder’s session ends, and the old holder’s open work never commits', async () => {
    database = await postgresTestDatabase();
    const [a, b] = [await replica('a'), await replica('b')];
    const leaseA = a.engineLease({ pollMs: 100 });
    const leaseB = b.engineLease({ pollMs: 100 });
    const acquiredA = once(leaseA, 'acquired');
    leaseA.start();
    await acquiredA;
    leaseB.start();

    let written!: () => void;
    const inserted = new Promise<void>((resolve) => (written = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const workA = leaseA.fenced(async (tx) => {
      await tx.insert(a.t.hosts).values({ name: 'from-a', publicKey: 'key' });
      written();
      await released;
      await tx.insert(a.t.hosts).values({ name: 'from-a-after-loss', publicKey: 'key' });
    });
    await inserted;

    const acquiredB = once(leaseB, 'acquired');
    const lostA = once(leaseA, 'lost');
    expect(await terminateSessions(database.server.adminUrl, 'a', 'lease')).toBe(1);
    await acquiredB;
    await lostA;
    expect([leaseA.held, leaseB.held]).toEqual([false, true]);
    await leaseB.fenced(async (tx) => {
      await tx.insert(b.t.hosts).values({ name: 'from-b', publicKey: 'key' });
    });

    release();
    await expect(workA).rejects.toBeInstanceOf(LeaseNotHeld);
    await expect(leaseA.fenced(async () => 'again')).rejects.toBeInstanceOf(LeaseNotHeld);
    expect(await hostNames(b)).toEqual(['from-b']);
    await Promise.all([leaseA.close(), leaseB.close()]);
  });

  it('is taken over by another process when the holder is killed, without the killed one’s work in flight', async () => {
    database = await postgresTestDatabase();
    const logs = mkdtempSync(join(tmpdir(), 'shoal-lease-'));
    cleanups.push(async () => rmSync(logs, { recursive: true, force: true }));
    const holder = (replicaId: string) => {
      const child = new LabProcess(`lease holder ${replicaId}`, process.execPath, ['--import', 'tsx', HOLDER, database.url, replicaId], {
        cwd: REPO_ROOT,
        logFile: join(logs, `${replicaId}.log`),
      });
      cleanups.push(() => child.kill());
      return child;
    };

    const first = holder('first');
    await first.waitForLine((line) => line === 'in-flight', 60_000, 'the first replica holding the lease with work in flight');
    const second = holder('second');
    await second.waitForLine((line) => line === 'started', 60_000, 'the second replica polling for the lease');

    await first.kill();
    await second.waitForLine((line) => line === 'committed', 60_000, 'the second replica committing engine work');

    const observer = await replica('observer');
    expect(await hostNames(observer)).toEqual(['first-committed', 'second-committed']);
  });
});
