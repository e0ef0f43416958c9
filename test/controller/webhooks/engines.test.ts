import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../../controller/src/db/store.js';
import { ManualClock } from '../helpers.js';
import { createWebhook, deleteWebhook, listDeliveries, pendingDeliveries, readWebhook } from '../../../controller/src/webhooks/endpoints.js';
import { enqueueDeliveries } from '../../../controller/src/webhooks/enqueue.js';
import { laneHeads, markDead } from '../../../controller/src/webhooks/lanes.js';
import { stopPostgresTestServer } from '../postgres-database.js';
import { freshStorePerTest, storeEngines } from '../store-engines.js';

afterAll(async () => {
  await stopPostgresTestServer();
});

/** Rollout events as the engine writes them (no rollout row: the payload then names no release). */
async function rolloutEvents(store: Store, clock: ManualClock, events: Array<{ rolloutId: string; kind: string }>): Promise<void> {
  await store.transaction(async (tx) => {
    for (const event of events) {
      await tx.insert(store.t.events).values({ at: clock.now(), kind: event.kind, actor: 'test', rolloutId: event.rolloutId, host: null, data: { reason: 'test' } });
    }
  });
}

describe.each(storeEngines)('webhook endpoints and deliveries on $name', (engine) => {
  let store: Store;
  const clock = new ManualClock();
  freshStorePerTest(engine, (opened) => (store = opened));

  it('enqueues each rollout event once per endpoint, counts what is pending as numbers, and sends lanes head first', async () => {
    await rolloutEvents(store, clock, [{ rolloutId: 'ro-old', kind: 'rollout-started' }]);
    const hook = await createWebhook(store, clock, { url: 'https://hooks.example/a', events: ['*'], description: 'ops' }, 'operator:test');
    expect(hook).toMatchObject({ pending: 0, failed: 0, state: 'active' });
    // Only events written after the endpoint exists reach it.
    await rolloutEvents(store, clock, [
      { rolloutId: 'ro-1', kind: 'rollout-started' },
      { rolloutId: 'ro-2', kind: 'rollout-started' },
      { rolloutId: 'ro-1', kind: 'rollout-halted' },
    ]);
    expect(await enqueueDeliveries(store, clock.now())).toBe(3);
    expect(await enqueueDeliveries(store, clock.now())).toBe(0);
    expect(await pendingDeliveries(store)).toBe(3);
    expect(await readWebhook(store, hook.id)).toMatchObject({ pending: 3, failed: 0 });

    const heads = await laneHeads(store, hook.id);
    expect(heads.map((d) => JSON.parse(d.payload) as { type: string; rollout: { id: string } }).map((p) => [p.rollout.id, p.type])).toEqual([
      ['ro-1', 'rollout-started'],
      ['ro-2', 'rollout-started'],
    ]);
    expect((await listDeliveries(store, hook.id, { limit: 10 })).map((d) => d.type)).toEqual(['rollout-halted', 'rollout-started', 'rollout-started']);

    await store.transaction(() => markDead(store, hook.id, clock.now(), 'no answer'));
    expect(await readWebhook(store, hook.id)).toMatchObject({ state: 'dead', pending: 0, failed: 3, deadReason: 'no answer' });
    expect(await pendingDeliveries(store)).toBe(0);

    expect(await deleteWebhook(store, hook.id)).toBe(true);
    expect(await deleteWebhook(store, hook.id)).toBe(false);
    expect(await readWebhook(store, hook.id)).toBeNull();
  });
});
