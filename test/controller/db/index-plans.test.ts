import { and, asc, eq, gt, inArray, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVE_ROLLOUT_STATES } from '../../../shared/src/rollout-api.js';
import type { Store } from '../../../controller/src/db/store.js';
import { storeEngines, type OpenedStore } from '../store-engines.js';

// The lookups a wave and its reports depend on find their rows by index on both engines, in a
// database shaped like one during a rollout: thousands of members, most never rolled back, a share
// not yet issued, and an event log mostly of reports, which belong to no rollout. Some of these
// indexes are partial (schema.ts), holding only the rows whose column is set, so that the bulk
// writes of a wave skip them; a lookup may use such an index only if its condition implies the
// index's, which is what these plans show.

const HOSTS = 3_000;
const ISSUED = 2_000;
const ROLLED_BACK = 30;
const EVENTS = 6_000;
const CHUNK = 500;

const hostName = (i: number) => `host-${String(i).padStart(5, '0')}`;

async function insertInChunks<T>(rows: T[], insert: (chunk: T[]) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) await insert(rows.slice(i, i + CHUNK));
}

async function seed(store: Store): Promise<void> {
  const { events, hosts, releases, rolloutHosts, rollouts } = store.t;
  const names = Array.from({ length: HOSTS }, (_, i) => hostName(i));
  await store.transaction(async (tx) => {
    await insertInChunks(names, (chunk) => tx.insert(hosts).values(chunk.map((name) => ({ name, publicKey: `key-${name}` }))));
    await tx.insert(releases).values({ name: 'r1', description: '', createdAt: 0, createdBy: 'test' });
    const rollout = { release: 'r1', spec: {}, plan: {}, waveIndex: 0, wavePhase: 'deploying' as const, createdAt: 0, createdBy: 'test', updatedAt: 0 };
    await tx.insert(rollouts).values([
      { ...rollout, id: 'earlier', state: 'rolled-back', finishedAt: 1 },
      { ...rollout, id: 'live', state: 'running' },
    ]);
    const member = (rolloutId: string, i: number) => ({ rolloutId, host: hostName(i), wave: i % 10, position: i, targetPath: `/nix/store/${i}-system` });
    // The earlier rollout rolled a few of its members back; the live one has issued to some of its members so far.
    const earlier = Array.from({ length: ISSUED }, (_, i) => {
      const rolledBack = i < ROLLED_BACK;
      return { ...member('earlier', i), state: 'healthy' as const, manifestVersion: 1, rollbackState: rolledBack ? ('healthy' as const) : null, rollbackVersion: rolledBack ? 2 : null };
    });
    const live = Array.from({ length: HOSTS }, (_, i) => {
      const issued = i < ISSUED;
      return { ...member('live', i), state: issued ? ('issued' as const) : ('pending' as const), manifestVersion: issued ? 3 : null };
    });
    await insertInChunks([...earlier, ...live], (chunk) => tx.insert(rolloutHosts).values(chunk));
    // Two reports for each event a rollout wrote (its host issued, then healthy), as during a wave.
    const logged = Array.from({ length: EVENTS }, (_, i) => ({
      host: hostName(i % HOSTS),
      at: i,
      kind: i % 3 === 0 ? 'rollout-host-issued' : 'report',
      actor: 'controller',
      rolloutId: i % 3 === 0 ? (i % 2 === 0 ? 'live' : 'earlier') : null,
      data: {},
    }));
    await insertInChunks(logged, (chunk) => tx.insert(events).values(chunk));
    // Statistics as the controller leaves them after a rollout's start: sampled on PostgreSQL, none on SQLite.
    for (const table of [hosts, rolloutHosts, events]) await store.grewInBulk(table);
  });
}

/**
 * The engine's plan for `query`, as text: on PostgreSQL for the values given, as the statement gets
 * it when run through drizzle (an unnamed statement, planned for its values each time).
 */
async function plan(store: Store, query: { toSQL(): { sql: string; params: unknown[] } }): Promise<string> {
  const { sql: text, params } = query.toSQL();
  const explain = store.engine === 'sqlite' ? `explain query plan ${text}` : `explain ${text}`;
  // SQLite's rows are (id, parent, notused, detail), PostgreSQL's one line of text each.
  const rows = await store.positional(store.q, '', explain).run(params);
  return rows.map((row) => row[row.length - 1]).join('\n');
}

describe.each(storeEngines)('index plans ($name)', (engine) => {
  let opened: OpenedStore;
  let store: Store;
  beforeAll(async () => {
    opened = await engine.open();
    store = opened.store;
    await seed(store);
  }, 60_000);
  afterAll(async () => {
    await opened?.dispose();
  });

  it('finds the members waiting on a renewed manifest by host and version (hosts/watermark.ts)', async () => {
    const { rolloutHosts } = store.t;
    const query = store.q
      .update(rolloutHosts)
      .set({ manifestVersion: 4 })
      .where(and(eq(rolloutHosts.host, hostName(7)), eq(rolloutHosts.manifestVersion, 3)));
    expect(await plan(store, query)).toContain('rollout_hosts_host_version');
  });

  it('finds the members whose rollback waits on a renewed manifest by host and rollback version, in the partial index', async () => {
    const { rolloutHosts } = store.t;
    const query = store.q
      .update(rolloutHosts)
      .set({ rollbackVersion: 4 })
      .where(and(eq(rolloutHosts.host, hostName(7)), eq(rolloutHosts.rollbackVersion, 2)));
    expect(await plan(store, query)).toContain('rollout_hosts_host_rollback_version');
  });

  it("finds a host's rollouts by host alone, issued or not: removing or pausing it (hosts/lifecycle.ts, hosts/pause.ts)", async () => {
    const { rolloutHosts, rollouts } = store.t;
    const query = store.q
      .select({ rolloutId: rolloutHosts.rolloutId })
      .from(rolloutHosts)
      .innerJoin(rollouts, eq(rollouts.id, rolloutHosts.rolloutId))
      .where(and(eq(rolloutHosts.host, hostName(HOSTS - 1)), inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])));
    expect(await plan(store, query)).toContain('rollout_hosts_host_version');
  });

  it("reads a rollout's audit log in id order from the partial index of rollout events (rollouts/status.ts)", async () => {
    const { events } = store.t;
    const query = store.q
      .select()
      .from(events)
      .where(and(eq(events.rolloutId, 'live'), gt(events.id, 0)))
      .orderBy(asc(events.id))
      .limit(1000);
    expect(await plan(store, query)).toContain('events_rollout_id');
  });
});
