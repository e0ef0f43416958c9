import { describe, expect, it } from 'vitest';
import { eventBatch } from '../../controller/src/events-batch.js';
import type { Store } from '../../controller/src/db/store.js';
import { freshStorePerTest, storeEngines } from './store-engines.js';

describe.each(storeEngines)('connection events written in batches ($name)', (engine) => {
  let store: Store;
  freshStorePerTest(engine, (opened) => (store = opened));

  it('writes the events of one turn in one go, in the order they were queued, and each append resolves once committed', async () => {
    const batch = eventBatch(store);
    const kinds = ['connected', 'disconnected', 'connected'] as const;
    await Promise.all(kinds.map((kind, i) => batch.append({ host: null, at: 1_000 + i, kind, actor: 'agent:web-1', data: { mode: 'websocket', i } })));
    const { events } = store.t;
    const rows = await store.q.select({ kind: events.kind, data: events.data }).from(events).orderBy(events.id);
    expect(rows.map((row) => [row.kind, (row.data as { i: number }).i])).toEqual([
      ['connected', 0],
      ['disconnected', 1],
      ['connected', 2],
    ]);
  });

  it('drained() waits for events queued in this turn', async () => {
    const batch = eventBatch(store);
    void batch.append({ host: null, at: 1, kind: 'connected', actor: 'agent:web-1', data: {} });
    await batch.drained();
    const { events } = store.t;
    expect(await store.q.select({ kind: events.kind }).from(events)).toEqual([{ kind: 'connected' }]);
  });

  it('a failed write rejects every append of its batch, and the next batch is written', async () => {
    const batch = eventBatch(store);
    // An event about a host that does not exist breaks the foreign key: the batch's transaction fails.
    const failed = batch.append({ host: 'no-such-host', at: 1, kind: 'connected', actor: 'agent:no-such-host', data: {} });
    await expect(failed).rejects.toThrow();
    await batch.append({ host: null, at: 2, kind: 'disconnected', actor: 'agent:web-1', data: {} });
    const { events } = store.t;
    expect(await store.q.select({ kind: events.kind }).from(events)).toEqual([{ kind: 'disconnected' }]);
  });
});
