import { describe, expect, it } from 'vitest';
import { replicaDatabasePerTest } from '../postgres-database.js';
import { terminateSessions } from './pg-admin.js';

describe('notifications between replicas on PostgreSQL', () => {
  const shared = replicaDatabasePerTest();

  it('delivers a publish on one replica to another, and resyncs a replica whose listen connection was lost', async () => {
    const a = await shared.replica('a');
    const b = await shared.replica('b');
    const received: string[] = [];
    let resyncs = 0;
    await b.notifications.subscribe('shoal_manifests', (payload) => received.push(payload), { onResync: () => resyncs++ });

    await a.transaction(async () => {
      await a.notifications.publish('shoal_manifests', 'web-1:1');
    });
    await expect.poll(() => received).toEqual(['web-1:1']);

    expect(await terminateSessions(shared.database.server.adminUrl, 'b', 'listen')).toBe(1);
    await expect.poll(() => resyncs).toBe(1);

    await a.notifications.publish('shoal_manifests', 'web-1:2');
    await expect.poll(() => received).toEqual(['web-1:1', 'web-1:2']);
  });
});
