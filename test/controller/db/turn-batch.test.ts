import { describe, expect, it } from 'vitest';
import type { Store } from '../../../controller/src/db/store.js';
import { turnBatch } from '../../../controller/src/db/turn-batch.js';
import { appendEvents, type NewEvent } from '../../../controller/src/events.js';
import { freshStorePerTest, storeEngines } from '../store-engines.js';

describe.each(storeEngines)('writes batched per event-loop turn ($name)', (engine) => {
  let store: Store;
  freshStorePerTest(engine, (opened) => (store = opened));

  const events = () => turnBatch<NewEvent>(store, (batch) => appendEvents(store, batch));
  const event = (i: number, host: string | null = null): NewEvent => ({ host, at: 1_000 + i, kind: 'connected', actor: 'agent:web-1', data: { i } });
  const written = async () => {
    const { events: table } = store.t;
    const rows = await store.q.select({ data: table.data }).from(table).orderBy(table.id);
    return rows.map((row) => (row.data as { i: number }).i);
  };

  it('writes the items of one turn in one transaction, in the order they were queued, and each add resolves once committed', async () => {
    let transactions = 0;
    const batch = turnBatch<NewEvent>(store, (items) => {
      transactions += 1;
      return appendEvents(store, items);
    });
    await Promise.all([0, 1, 2].map((i) => batch.add(event(i))));
    expect(transactions).toBe(1);
    expect(await written()).toEqual([0, 1, 2]);
  });

  it('drained() waits for items queued in this turn', async () => {
    const batch = events();
    void batch.add(event(7));
    await batch.drained();
    expect(await written()).toEqual([7]);
  });

  it('one bad item fails only its own add: the rest of its turn is written, in order', async () => {
    const batch = events();
    // An event about a host that does not exist breaks the foreign key, which fails the batch's transaction.
    const adds = [batch.add(event(0)), batch.add(event(1, 'no-such-host')), batch.add(event(2))];
    const outcomes = await Promise.allSettled(adds);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await written()).toEqual([0, 2]);
    await batch.add(event(3));
    expect(await written()).toEqual([0, 2, 3]);
  });

  it('an item queued inside a transaction does not commit or roll back with it', async () => {
    const batch = events();
    let queued: Promise<void> | undefined;
    await expect(
      store.transaction(async () => {
        queued = batch.add(event(5));
        // The body's own writes stay in its transaction after queueing: rolled back below with it.
        await appendEvents(store, [event(6)]);
        // Turns pass while the body is still open: the batch is scheduled and starts its write.
        for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
        throw new Error('the caller changes its mind');
      }),
    ).rejects.toThrow('the caller changes its mind');
    await queued;
    expect(await written()).toEqual([5]);
  });
});
