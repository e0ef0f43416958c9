import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../../controller/src/db/store.js';
import { StoreUnavailable, storeUnavailable } from '../../../controller/src/db/store-errors.js';
import { startPostgres, type PostgresServer } from '../../lab/postgres.js';

describe('store while PostgreSQL is down', () => {
  let server: PostgresServer | undefined;
  let store: Store | undefined;
  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('fails operations with StoreUnavailable, and works again once the server is back, in the same process', async () => {
    // A server of its own: stopping the shared one would pull the database from under other tests.
    server = await startPostgres();
    // An empty database: openStore applies the migrations itself.
    store = await openStore({ database: server.url, replicaId: 'outage' });
    const s = store;
    const addHost = (name: string) =>
      s.transaction(async (tx) => {
        await tx.insert(s.t.hosts).values({ name, publicKey: 'key' });
      });
    await addHost('before');
    const lease = s.engineLease({ pollMs: 100 });
    const acquired = once(lease, 'acquired');
    lease.start();
    await acquired;
    let resyncs = 0;
    const received: string[] = [];
    await s.notifications.subscribe('shoal_outage', (payload) => received.push(payload), { onResync: () => resyncs++ });

    const lost = once(lease, 'lost');
    await server.stopServer();
    await lost;

    const write = await addHost('during').catch((error: unknown) => error);
    expect(write).toBeInstanceOf(StoreUnavailable);
    expect((write as StoreUnavailable).message).toMatch(/^the database is unavailable: /);
    expect((write as StoreUnavailable).cause).toBeDefined();
    const read = await s.db.select().from(s.t.hosts).catch((error: unknown) => error);
    expect(storeUnavailable(read)).toBeInstanceOf(StoreUnavailable);
    await expect(s.notifications.publish('shoal_outage', 'during')).rejects.toBeInstanceOf(StoreUnavailable);
    await expect(lease.fenced(async () => 'engine work')).rejects.toThrow(/engine lease/);
    // An ordinary failure is not mistaken for an outage.
    expect(storeUnavailable(new Error('duplicate key value violates unique constraint'))).toBeNull();

    const reacquired = once(lease, 'acquired');
    await server.startServer();
    await addHost('after');
    expect((await s.db.select({ name: s.t.hosts.name }).from(s.t.hosts).orderBy(s.t.hosts.name)).map((row) => row.name)).toEqual(['after', 'before']);
    await reacquired;
    await expect(lease.fenced(async () => 'engine work')).resolves.toBe('engine work');
    await expect.poll(() => resyncs).toBe(1);
    await s.notifications.publish('shoal_outage', 'after');
    await expect.poll(() => received).toEqual(['after']);
    await lease.close();
  });
});
