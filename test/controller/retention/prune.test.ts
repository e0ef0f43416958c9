import { eq, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../../controller/src/db/store.js';
import { DEFAULT_RETENTION, pruneAll, pruneBatch, type RetentionOptions } from '../../../controller/src/retention/prune.js';
import type { WebhookDeliveryState } from '../../../shared/src/webhook-api.js';
import { ManualClock, storePath } from '../helpers.js';
import { stopPostgresTestServer } from '../postgres-database.js';
import { liveController } from '../server-helpers.js';
import { storeEngines, type OpenedStore } from '../store-engines.js';

const DAY = 24 * 3600_000;
const RETENTION: RetentionOptions = { reportsDays: 30, eventsDays: 30, auditEventsDays: 365, webhookDeliveriesDays: 30, manifestsDays: 30, pruneIntervalMs: 60_000 };

afterAll(async () => {
  await stopPostgresTestServer();
});

// The same statements run on SQLite and on PostgreSQL: each case on both engines.
describe.each(storeEngines)('retention on $name', (engine) => {
  let opened: OpenedStore;
  let store: Store;
  let clock: ManualClock;
  /** An event about web-1 written when it registered (recent, not an operator's: kept by every test). */
  let registered: number;
  beforeEach(async () => {
    opened = await engine.open();
    store = opened.store;
    clock = new ManualClock();
    registered = await store.transaction(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key' });
      return addEvent(clock.now(), { kind: 'host-registered', actor: 'test' });
    });
  });
  afterEach(async () => {
    await opened.dispose();
  });

  const ago = (days: number) => clock.now() - days * DAY;

  async function addReport(seq: number, receivedAt: number): Promise<void> {
    const { reports, hosts } = store.t;
    await store.transaction(async (tx) => {
      await tx.insert(reports).values({ host: 'web-1', seq, receivedAt, body: { seq } });
      await tx.update(hosts).set({ lastReportSeq: seq }).where(eq(hosts.name, 'web-1'));
    });
  }

  async function addEvent(at: number, fields: { kind?: string; actor?: string; rolloutId?: string | null } = {}): Promise<number> {
    const { events } = store.t;
    const [row] = await store.transaction((tx) =>
      tx
        .insert(events)
        .values({ host: 'web-1', at, kind: fields.kind ?? 'connected', actor: fields.actor ?? 'agent:web-1', rolloutId: fields.rolloutId ?? null, data: {} })
        .returning({ id: events.id }),
    );
    return row!.id;
  }

  async function addRollout(id: string, finishedAt: number | null): Promise<void> {
    const { releases, rollouts } = store.t;
    await store.transaction(async (tx) => {
      await tx.insert(releases).values({ name: 'rel-1', description: '', createdAt: ago(400), createdBy: 'operator:x' }).onConflictDoNothing();
      await tx
        .insert(rollouts)
        .values({ id, release: 'rel-1', spec: {}, plan: {}, state: finishedAt ? 'succeeded' : 'running', waveIndex: 0, wavePhase: 'deploying', createdAt: ago(400), createdBy: 'operator:x', updatedAt: ago(400), finishedAt });
    });
  }

  const eventIds = async () => (await store.db.select({ id: store.t.events.id }).from(store.t.events)).map((e) => e.id).sort((a, b) => a - b);
  const reportSeqs = async () => (await store.db.select({ seq: store.t.reports.seq }).from(store.t.reports)).map((r) => r.seq);
  const count = async (table: 'events') => (await store.rows<{ n: number }>(sql`select count(*) as n from ${sql.raw(table)}`))[0]!.n;

    it('prunes reports older than their age, but never the newest report of a host', async () => {
      await addReport(1, ago(60));
      await addReport(2, ago(40));
      await addReport(3, ago(1));
      await pruneAll(store, clock, RETENTION);
      expect(await reportSeqs()).toEqual([3]);

      // A host silent for months keeps its last word: the report its status comes from.
      clock.advance(90 * DAY);
      await pruneAll(store, clock, RETENTION);
      expect(await reportSeqs()).toEqual([3]);
      expect((await store.db.select({ seq: store.t.hosts.lastReportSeq }).from(store.t.hosts))[0]!.seq).toBe(3);
    });

    it('keeps the audit log (rollouts, operators) longer than the chatter, and all of an unfinished rollout', async () => {
      await addRollout('ro-done', ago(300));
      await addRollout('ro-running', null);
      const chatterOld = await addEvent(ago(40), { kind: 'report' });
      const chatterNew = await addEvent(ago(5), { kind: 'disconnected' });
      const rolloutOld = await addEvent(ago(200), { kind: 'rollout-started', actor: 'operator:ops', rolloutId: 'ro-done' });
      const operatorOld = await addEvent(ago(200), { kind: 'desired-set', actor: 'operator:ops' });
      const ancient = await addEvent(ago(400), { kind: 'rollout-succeeded', actor: 'controller', rolloutId: 'ro-done' });
      const running = await addEvent(ago(400), { kind: 'rollout-started', actor: 'operator:ops', rolloutId: 'ro-running' });
      const counts = await pruneAll(store, clock, RETENTION);
      expect(counts).toMatchObject({ events: 1, auditEvents: 1 });
      const left = await eventIds();
      expect(left.sort((a, b) => a - b)).toEqual([registered, chatterNew, rolloutOld, operatorOld, running].sort((a, b) => a - b));
      expect(left).not.toContain(chatterOld);
      expect(left).not.toContain(ancient);
    });

    it('keeps events a webhook has not turned into deliveries yet, and pending deliveries however old', async () => {
      const old = await addEvent(ago(40), { kind: 'rollout-started', rolloutId: 'ro-x', actor: 'controller' });
      const oldChatter = await addEvent(ago(40));
      const { webhooks, webhookDeliveries } = store.t;
      await store.transaction(async (tx) => {
        await tx.insert(webhooks).values({ id: 'wh-1', url: 'https://example.com', secret: 's', events: ['*'], cursorEventId: old - 1, createdAt: ago(50), createdBy: 'operator:x' });
        const delivery = (id: string, state: WebhookDeliveryState, createdAt: number) =>
          tx.insert(webhookDeliveries).values({ id, webhookId: 'wh-1', eventId: Number(id.slice(1)), type: 'rollout-started', payload: '{}', state, nextAttemptAt: createdAt, createdAt });
        await delivery('d1', 'delivered', ago(40));
        await delivery('d2', 'failed', ago(40));
        await delivery('d3', 'pending', ago(40));
        await delivery('d4', 'delivered', ago(2));
      });
      await pruneAll(store, clock, { ...RETENTION, auditEventsDays: 30 });
      expect((await store.db.select({ id: webhookDeliveries.id }).from(webhookDeliveries)).map((d) => d.id).sort()).toEqual(['d3', 'd4']);
      expect(await eventIds()).toEqual([registered, old, oldChatter]);
    });

    it('prunes in batches of a bounded size, and keeps everything when an age is null', async () => {
      for (let i = 0; i < 35; i++) await addEvent(ago(40));
      expect(await pruneBatch(store, 'events', clock.now(), { ...RETENTION, batchRows: 10 })).toBe(10);
      expect(await count('events')).toBe(26);
      expect(await pruneBatch(store, 'events', clock.now(), { ...RETENTION, eventsDays: null })).toBe(0);
      expect((await pruneAll(store, clock, { ...RETENTION, batchRows: 10 })).events).toBe(25);
      expect(await count('events')).toBe(1);
    });
});

describe('retention in the controller', () => {
  it('runs on the controller\'s timer', async () => {
    const ctl = await liveController({ retention: { ...DEFAULT_RETENTION, reportsDays: 1, pruneIntervalMs: 50 } });
    try {
      const { store } = ctl.handle;
      const { reports, hosts } = store.t;
      await ctl.register('web-2');
      await store.transaction(async (tx) => {
        await tx.insert(reports).values({ host: 'web-2', seq: 1, receivedAt: Date.now() - 2 * DAY, body: {} });
        await tx.insert(reports).values({ host: 'web-2', seq: 2, receivedAt: Date.now() - 2 * DAY, body: { path: storePath() } });
        await tx.update(hosts).set({ lastReportSeq: 2 }).where(eq(hosts.name, 'web-2'));
      });
      await expect.poll(async () => (await store.db.select({ seq: reports.seq }).from(reports)).map((r) => r.seq)).toEqual([2]);
    } finally {
      await ctl.close();
    }
  });
});
