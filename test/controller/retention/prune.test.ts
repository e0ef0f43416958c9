import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OpenDatabase } from '../../../controller/src/db/open.js';
import { openSqliteStore, sqliteWriter } from '../../../controller/src/db/sqlite-store.js';
import type { Store } from '../../../controller/src/db/store.js';
import { events, hosts, releases, reports, rollouts, webhookDeliveries, webhooks } from '../../../controller/src/db/schema.js';
import { registerHost } from '../../../controller/src/hosts/enrollment.js';
import { DEFAULT_RETENTION, pruneAll, pruneBatch, type RetentionOptions } from '../../../controller/src/retention/prune.js';
import type { WebhookDeliveryState } from '../../../shared/src/webhook-api.js';
import { ManualClock, newHostKeys, storePath } from '../helpers.js';
import { liveController } from '../server-helpers.js';

const DAY = 24 * 3600_000;
const RETENTION: RetentionOptions = { reportsDays: 30, eventsDays: 30, auditEventsDays: 365, webhookDeliveriesDays: 30, manifestsDays: 30, pruneIntervalMs: 60_000 };

let dir: string;
let store: Store;
let database: OpenDatabase;
let clock: ManualClock;
/** The host-registered event registering web-1 writes (recent, not an operator's: kept by every test). */
let registered: number;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shoal-prune-'));
  store = openSqliteStore({ database: join(dir, 'controller.sqlite') });
  database = sqliteWriter(store);
  clock = new ManualClock();
  await registerHost(store, clock, { name: 'web-1', publicKey: newHostKeys('web-1').publicKey, tags: [], actor: 'test' });
  registered = database.db.select({ id: events.id }).from(events).get()!.id;
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const ago = (days: number) => clock.now() - days * DAY;

function addReport(seq: number, receivedAt: number): void {
  database.db.insert(reports).values({ host: 'web-1', seq, receivedAt, body: { seq } }).run();
  database.db.update(hosts).set({ lastReportSeq: seq }).where(eq(hosts.name, 'web-1')).run();
}

function addEvent(at: number, fields: { kind?: string; actor?: string; rolloutId?: string | null } = {}): number {
  const row = database.db
    .insert(events)
    .values({ host: 'web-1', at, kind: fields.kind ?? 'connected', actor: fields.actor ?? 'agent:web-1', rolloutId: fields.rolloutId ?? null, data: {} })
    .returning({ id: events.id })
    .get();
  return row.id;
}

function addRollout(id: string, finishedAt: number | null): void {
  if (!database.db.select().from(releases).where(eq(releases.name, 'rel-1')).get()) {
    database.db.insert(releases).values({ name: 'rel-1', description: '', createdAt: ago(400), createdBy: 'operator:x' }).run();
  }
  database.db
    .insert(rollouts)
    .values({ id, release: 'rel-1', spec: {}, plan: {}, state: finishedAt ? 'succeeded' : 'running', waveIndex: 0, wavePhase: 'deploying', createdAt: ago(400), createdBy: 'operator:x', updatedAt: ago(400), finishedAt })
    .run();
}

const count = (table: typeof reports | typeof events | typeof webhookDeliveries) => database.db.select({ n: sql<number>`count(*)` }).from(table).get()!.n;

describe('retention', () => {
  it('prunes reports older than their age, but never the newest report of a host', async () => {
    addReport(1, ago(60));
    addReport(2, ago(40));
    addReport(3, ago(1));
    await pruneAll(database.db, clock, RETENTION);
    expect(database.db.select({ seq: reports.seq }).from(reports).all().map((r) => r.seq)).toEqual([3]);

    // A host silent for months keeps its last word: the report its status comes from.
    clock.advance(90 * DAY);
    await pruneAll(database.db, clock, RETENTION);
    expect(database.db.select({ seq: reports.seq }).from(reports).all().map((r) => r.seq)).toEqual([3]);
    expect(database.db.select({ seq: hosts.lastReportSeq }).from(hosts).get()!.seq).toBe(3);
  });

  it('keeps the audit log (rollouts, operators) longer than the chatter, and all of an unfinished rollout', async () => {
    addRollout('ro-done', ago(300));
    addRollout('ro-running', null);
    const chatterOld = addEvent(ago(40), { kind: 'report' });
    const chatterNew = addEvent(ago(5), { kind: 'disconnected' });
    const rolloutOld = addEvent(ago(200), { kind: 'rollout-started', actor: 'operator:ops', rolloutId: 'ro-done' });
    const operatorOld = addEvent(ago(200), { kind: 'desired-set', actor: 'operator:ops' });
    const ancient = addEvent(ago(400), { kind: 'rollout-succeeded', actor: 'controller', rolloutId: 'ro-done' });
    const running = addEvent(ago(400), { kind: 'rollout-started', actor: 'operator:ops', rolloutId: 'ro-running' });
    const counts = await pruneAll(database.db, clock, RETENTION);
    expect(counts).toMatchObject({ events: 1, auditEvents: 1 });
    const left = database.db.select({ id: events.id }).from(events).all().map((e) => e.id);
    expect(left.sort((a, b) => a - b)).toEqual([registered, chatterNew, rolloutOld, operatorOld, running].sort((a, b) => a - b));
    expect(left).not.toContain(chatterOld);
    expect(left).not.toContain(ancient);
  });

  it('keeps events a webhook has not turned into deliveries yet, and pending deliveries however old', async () => {
    const old = addEvent(ago(40), { kind: 'rollout-started', rolloutId: 'ro-x', actor: 'controller' });
    const oldChatter = addEvent(ago(40));
    database.db.insert(webhooks).values({ id: 'wh-1', url: 'https://example.com', secret: 's', events: ['*'], cursorEventId: old - 1, createdAt: ago(50), createdBy: 'operator:x' }).run();
    const delivery = (id: string, state: WebhookDeliveryState, createdAt: number) =>
      database.db.insert(webhookDeliveries).values({ id, webhookId: 'wh-1', eventId: Number(id.slice(1)), type: 'rollout-started', payload: '{}', state, nextAttemptAt: createdAt, createdAt }).run();
    delivery('d1', 'delivered', ago(40));
    delivery('d2', 'failed', ago(40));
    delivery('d3', 'pending', ago(40));
    delivery('d4', 'delivered', ago(2));
    await pruneAll(database.db, clock, { ...RETENTION, auditEventsDays: 30 });
    expect(database.db.select({ id: webhookDeliveries.id }).from(webhookDeliveries).all().map((d) => d.id).sort()).toEqual(['d3', 'd4']);
    expect(database.db.select({ id: events.id }).from(events).all().map((e) => e.id).sort((a, b) => a - b)).toEqual([registered, old, oldChatter]);
  });

  it('prunes in batches of a bounded size, and keeps everything when an age is null', async () => {
    for (let i = 0; i < 35; i++) addEvent(ago(40));
    expect(pruneBatch(database.db, 'events', clock.now(), { ...RETENTION, batchRows: 10 })).toBe(10);
    expect(count(events)).toBe(26);
    expect(pruneBatch(database.db, 'events', clock.now(), { ...RETENTION, eventsDays: null })).toBe(0);
    expect((await pruneAll(database.db, clock, { ...RETENTION, batchRows: 10 })).events).toBe(25);
    expect(count(events)).toBe(1);
  });

  it('runs on the controller\'s timer', async () => {
    const ctl = await liveController({ retention: { ...DEFAULT_RETENTION, reportsDays: 1, pruneIntervalMs: 50 } });
    try {
      const { db } = ctl.handle.database;
      await ctl.register('web-2');
      db.insert(reports).values({ host: 'web-2', seq: 1, receivedAt: Date.now() - 2 * DAY, body: {} }).run();
      db.insert(reports).values({ host: 'web-2', seq: 2, receivedAt: Date.now() - 2 * DAY, body: { path: storePath() } }).run();
      db.update(hosts).set({ lastReportSeq: 2 }).where(eq(hosts.name, 'web-2')).run();
      await expect.poll(() => db.select({ seq: reports.seq }).from(reports).all().map((r) => r.seq)).toEqual([2]);
    } finally {
      await ctl.close();
    }
  });
});
