import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../../controller/src/db/store.js';
import { postgresTestDatabase, stopPostgresTestServer, type PostgresTestDatabase } from '../postgres-database.js';
import { terminateSessions } from './pg-admin.js';

describe('notifications between replicas on PostgreSQL', () => {
  let database: PostgresTestDatabase;
  const stores: Store[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await database.drop();
  });
  afterAll(async () => {
    await stopPostgresTestServer();
  });

  it('delivers a publish on one replica to another, and resyncs a replica whose listen connection was lost', async () => {
    database = await postgresTestDatabase();
    const a = await openStore({ database: database.url, replicaId: 'a' });
    const b = await openStore({ database: database.url, replicaId: 'b' });
    stores.push(a, b);
    const received: string[] = [];
    let resyncs = 0;
    await b.notifications.subscribe('shoal_manifests', (payload) => received.push(payload), { onResync: () => resyncs++ });

    await a.transaction(async () => {
      await a.notifications.publish('shoal_manifests', 'web-1:1');
    });
    await expect.poll(() => received).toEqual(['web-1:1']);

    expect(await terminateSessions(database.server.adminUrl, 'b', 'listen')).toBe(1);
    await expect.poll(() => resyncs).toBe(1);

    await a.notifications.publish('shoal_manifests', 'web-1:2');
    await expect.poll(() => received).toEqual(['web-1:1', 'web-1:2']);
  });
});
