import { asc, eq } from 'drizzle-orm';
import pino from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../controller/src/db/store.js';
import { EventLog } from '../../controller/src/event-log.js';
import { eventCursorAt, newestEventCursor, readEvents, settledThrough, type EventCursor } from '../../controller/src/events-cursor.js';
import { Presence } from '../../controller/src/hosts/presence.js';
import { ControllerMetrics } from '../../controller/src/metrics/controller-metrics.js';
import { createWebhook } from '../../controller/src/webhooks/endpoints.js';
import { enqueueDeliveries, type EnqueueCursors } from '../../controller/src/webhooks/enqueue.js';
import { ManualClock } from './helpers.js';
import { stopPostgresTestServer } from './postgres-database.js';
import { freshStorePerTest, storeEngines } from './store-engines.js';

afterAll(async () => {
  await stopPostgresTestServer();
});

interface Held {
  id: number;
  commit(): Promise<void>;
  rollBack(): Promise<void>;
}

/**
 * An event inserted in a transaction left open until the test commits or rolls it back: on
 * PostgreSQL its id is taken at once, and another transaction's higher id may commit first.
 */
async function heldEvent(store: Store, kind: string, rolloutId = 'ro-1'): Promise<Held> {
  let inserted!: (id: number) => void;
  const id = new Promise<number>((resolve) => (inserted = resolve));
  let finish!: (commit: boolean) => void;
  const decided = new Promise<boolean>((resolve) => (finish = resolve));
  const done = store
    .transaction(async (tx) => {
      const [row] = await tx.insert(store.t.events).values({ at: 0, kind, actor: 'test', rolloutId, host: null, data: { reason: 'test' } }).returning({ id: store.t.events.id });
      inserted(row!.id);
      if (!(await decided)) throw new Error('rolled back by the test');
    })
    .catch((error: unknown) => {
      if (!(error instanceof Error && error.message === 'rolled back by the test')) throw error;
    });
  return {
    id: await id,
    async commit() {
      finish(true);
      await done;
    },
    async rollBack() {
      finish(false);
      await done;
    },
  };
}

/** Two events whose ids are taken in one order and committed in the other: the second (higher id) commits first. */
async function committedOutOfOrder(store: Store, kinds: [string, string], between: () => Promise<void>): Promise<[number, number]> {
  const first = await heldEvent(store, kinds[0]);
  const second = await heldEvent(store, kinds[1]);
  expect(second.id).toBeGreaterThan(first.id);
  await second.commit();
  await between();
  await first.commit();
  return [first.id, second.id];
}

const ids = (store: Store) => async (cursor: EventCursor, options: { now?: number; graceMs?: number } = {}) =>
  readEvents(store, cursor, {
    batch: 100,
    now: options.now ?? Date.now(),
    ...(options.graceMs === undefined ? {} : { graceMs: options.graceMs }),
    rows: (among, limit) => store.q.select({ id: store.t.events.id }).from(store.t.events).where(among).orderBy(asc(store.t.events.id)).limit(limit),
  });

// Only PostgreSQL can commit a lower id after a higher one: SQLite has one writer, so a second transaction waits for the first.
describe.each(storeEngines.filter((engine) => engine.name === 'postgres'))('readers of the audit log on $name, when ids commit out of order', (engine) => {
  let store: Store;
  freshStorePerTest(engine, (opened) => (store = opened));

  it('reads an event whose transaction committed after a higher id was read, once', async () => {
    const read = ids(store);
    let cursor = await newestEventCursor(store);
    const seen: number[] = [];
    const [low, high] = await committedOutOfOrder(store, ['rollout-started', 'rollout-halted'], async () => {
      const first = await read(cursor);
      seen.push(...first.rows.map((row) => row.id));
      cursor = first.cursor;
      // Read past, but not settled past: a durable cursor stays below the missing id.
      expect(settledThrough(cursor)).toBe(cursor.above - 2);
    });
    for (let i = 0; i < 2; i++) {
      const next = await read(cursor);
      seen.push(...next.rows.map((row) => row.id));
      cursor = next.cursor;
    }
    expect(seen).toEqual([high, low]);
    expect(settledThrough(cursor)).toBe(high);
  });

  it('settles past the id of a rolled-back transaction once the grace period is over, and keeps reading meanwhile', async () => {
    const read = ids(store);
    let cursor = await newestEventCursor(store);
    const start = cursor.above;
    const lost = await heldEvent(store, 'rollout-started');
    const kept = await heldEvent(store, 'rollout-halted');
    await kept.commit();
    const first = await read(cursor, { now: 1_000, graceMs: 5_000 });
    expect(first.rows.map((row) => row.id)).toEqual([kept.id]);
    await lost.rollBack();
    const later = await heldEvent(store, 'rollout-succeeded');
    await later.commit();
    // Within the grace period the gap stays open, and what comes after it is read all the same.
    const second = await read(first.cursor, { now: 4_000, graceMs: 5_000 });
    expect(second.rows.map((row) => row.id)).toEqual([later.id]);
    expect(settledThrough(second.cursor)).toBe(start);
    const third = await read(second.cursor, { now: 6_000, graceMs: 5_000 });
    expect(third.rows).toEqual([]);
    cursor = third.cursor;
    expect(cursor.gaps).toEqual([]);
    expect(settledThrough(cursor)).toBe(later.id);
  });

  it('logs both events, each once', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = new EventLog(store, pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }));
    await log.flush();
    const [low, high] = await committedOutOfOrder(store, ['rollout-started', 'rollout-halted'], () => log.flush());
    await log.flush();
    await log.stop();
    expect(lines.map((line) => line.eventId)).toEqual([high, low]);
  });

  it('counts both events in the metrics, each once', async () => {
    const clock = new ManualClock();
    const metrics = new ControllerMetrics({
      store,
      presence: new Presence(store, clock, 1000),
      pendingWebhookDeliveries: async () => 0,
      rolloutEngineTicks: () => 0,
    });
    const halts = async () => {
      await metrics.refresh();
      return (await metrics.registry.getSingleMetric('shoal_rollout_halts_total')!.get()).values[0]!.value;
    };
    expect(await halts()).toBe(0);
    await committedOutOfOrder(store, ['rollout-halted', 'rollout-halted'], async () => {
      expect(await halts()).toBe(1);
    });
    expect(await halts()).toBe(2);
    expect(await halts()).toBe(2);
  });

  it('turns both events into one webhook delivery each, and the durable cursor reaches the higher id once nothing is missing', async () => {
    const clock = new ManualClock();
    const hook = await createWebhook(store, clock, { url: 'https://hooks.example/a', events: ['*'], description: '' }, 'operator:test');
    const cursors: EnqueueCursors = new Map();
    let enqueued = 0;
    const [low, high] = await committedOutOfOrder(store, ['rollout-started', 'rollout-halted'], async () => {
      enqueued += await enqueueDeliveries(store, clock.now(), cursors);
    });
    enqueued += await enqueueDeliveries(store, clock.now(), cursors);
    enqueued += await enqueueDeliveries(store, clock.now(), cursors);
    // A pass without the memory (a restart, another replica) reads again from the durable cursor and adds nothing.
    enqueued += await enqueueDeliveries(store, clock.now());
    expect(enqueued).toBe(2);
    const { webhookDeliveries, webhooks } = store.t;
    const delivered = await store.q.select({ eventId: webhookDeliveries.eventId }).from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, hook.id)).orderBy(asc(webhookDeliveries.eventId));
    expect(delivered.map((row) => row.eventId)).toEqual([low, high]);
    const [row] = await store.q.select({ cursor: webhooks.cursorEventId }).from(webhooks).where(eq(webhooks.id, hook.id));
    expect(row!.cursor).toBe(high);
  });

  it('moves a webhook’s durable cursor past a rolled-back transaction’s id after the grace period', async () => {
    const clock = new ManualClock();
    const hook = await createWebhook(store, clock, { url: 'https://hooks.example/a', events: ['*'], description: '' }, 'operator:test');
    const { webhooks } = store.t;
    const durable = async () => (await store.q.select({ cursor: webhooks.cursorEventId }).from(webhooks).where(eq(webhooks.id, hook.id)))[0]!.cursor;
    const start = await durable();
    const cursors: EnqueueCursors = new Map();
    const lost = await heldEvent(store, 'rollout-started');
    const kept = await heldEvent(store, 'rollout-halted');
    await kept.commit();
    expect(await enqueueDeliveries(store, clock.now(), cursors, { gapGraceMs: 5_000 })).toBe(1);
    await lost.rollBack();
    expect(await enqueueDeliveries(store, clock.now(), cursors, { gapGraceMs: 5_000 })).toBe(0);
    expect(await durable()).toBe(start);
    clock.advance(5_000);
    expect(await enqueueDeliveries(store, clock.now(), cursors, { gapGraceMs: 5_000 })).toBe(0);
    expect(await durable()).toBe(kept.id);
  });
});

describe.each(storeEngines)('the events cursor on $name', (engine) => {
  it('settles past a missing id at once on SQLite, and reads in batches', async () => {
    const opened = await engine.open();
    try {
      const { store } = opened;
      const insert = (kind: string) =>
        store.transaction(async (tx) => (await tx.insert(store.t.events).values({ at: 0, kind, actor: 'test', rolloutId: 'ro-1', host: null, data: {} }).returning({ id: store.t.events.id }))[0]!.id);
      const start = (await newestEventCursor(store)).above;
      const written: number[] = [];
      for (let i = 0; i < 5; i++) written.push(await insert('rollout-started'));
      // A hole: the event is gone (retention), not in flight.
      await store.transaction(async (tx) => {
        await tx.delete(store.t.events).where(eq(store.t.events.id, written[1]!));
      });
      const seen: number[] = [];
      let cursor = eventCursorAt(start);
      for (let more = true; more; ) {
        const read = await readEvents(store, cursor, {
          batch: 2,
          now: Date.now(),
          rows: (among, limit) => store.q.select({ id: store.t.events.id }).from(store.t.events).where(among).orderBy(asc(store.t.events.id)).limit(limit),
        });
        seen.push(...read.rows.map((row) => row.id));
        cursor = read.cursor;
        more = read.more;
      }
      expect(seen).toEqual(written.filter((_, i) => i !== 1));
      expect(cursor.above).toBe(written[4]);
      if (engine.name === 'sqlite') expect(settledThrough(cursor)).toBe(written[4]);
      else expect(settledThrough(cursor)).toBe(written[0]);
    } finally {
      await opened.dispose();
    }
  });
});
