import { eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../shared/src/logger.js';
import { openStore, type Store } from '../../../controller/src/db/store.js';
import { reportWriter } from '../../../controller/src/reports/store.js';
import type { HostReport } from '../../../controller/src/rollouts/report.js';
import { ManualClock, sampleReport } from '../helpers.js';
import { stopPostgresTestServer } from '../postgres-database.js';
import { storeEngines, type OpenedStore } from '../store-engines.js';

afterAll(async () => {
  await stopPostgresTestServer();
});

// Serialization conflicts exist on PostgreSQL only (SQLite has one writer).
// Run in the postgres project (storeEngines holds the engine of the run).
const postgres = storeEngines.find((engine) => engine.name === 'postgres');

describe.runIf(postgres)('report group commit on PostgreSQL', () => {
  let opened: OpenedStore;
  let store: Store;
  let replica2: Store;
  beforeEach(async () => {
    opened = await postgres!.open();
    store = opened.store;
    replica2 = await openStore({ database: opened.database, replicaId: 'b' });
    await store.transaction(async (tx) => {
      for (const name of ['web-1', 'web-2']) await tx.insert(store.t.hosts).values({ name, publicKey: `key-${name}`, tags: [] });
    });
  });
  afterEach(async () => {
    await replica2.close();
    await opened.dispose();
  });

  it('runs a group again after a serialization conflict instead of failing the batch that met it', async () => {
    let interfered = false;
    // While the group is open, another replica commits a change to web-1's row: the group's own update of that row then conflicts (40001).
    const observer = async (stored: readonly HostReport[]) => {
      if (stored.some(({ host }) => host === 'web-1') && !interfered) {
        interfered = true;
        await replica2.transaction(async (tx) => {
          await tx.update(replica2.t.hosts).set({ lastSeenAt: 1 }).where(eq(replica2.t.hosts.name, 'web-1'));
        });
      }
      return stored.map(() => ({ rolloutId: null, events: [] }));
    };
    const writer = reportWriter(store, new ManualClock(), silentLogger(), observer);
    const outcomes = await Promise.allSettled([writer.store('web-1', [sampleReport(1, 'accepted')]), writer.store('web-2', [sampleReport(1, 'accepted')])]);
    expect(interfered).toBe(true);
    expect(outcomes).toEqual([
      { status: 'fulfilled', value: { ackedSeqs: [1], stored: 1, rollouts: [], seenAt: expect.any(Number) } },
      { status: 'fulfilled', value: { ackedSeqs: [1], stored: 1, rollouts: [], seenAt: expect.any(Number) } },
    ]);
    const rows = await store.db.select({ host: store.t.reports.host }).from(store.t.reports);
    expect(rows.map((row) => row.host).sort()).toEqual(['web-1', 'web-2']);
  });
});
