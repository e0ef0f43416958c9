import { asc, eq, inArray, sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { chunkedStatement, placeholderRow, rowIndexes, rowKeysIn, rowValues, shared } from '../../../controller/src/db/chunked.js';
import type { Store } from '../../../controller/src/db/store.js';
import { writeHostStatus } from '../../../controller/src/reports/host-status.js';
import { sampleReport } from '../helpers.js';
import { freshStorePerTest, storeEngines } from '../store-engines.js';

interface HostRow {
  name: string;
  publicKey: string;
  tags: string[];
  lastSeenAt: number | null;
  paused: boolean;
}

const HOST_FIELDS = ['name', 'publicKey', 'tags', 'lastSeenAt', 'paused'] as const;

// An insert through the columns' encoders: tags is JSON, paused a boolean (an integer on SQLite).
const insertHosts = chunkedStatement<HostRow>('test_hosts_insert', (q, { hosts }, size) =>
  q.insert(hosts).values(rowIndexes(size).map((i) => placeholderRow(HOST_FIELDS, i))),
);

// A keyed update from the rows' values, with a value shared by every row, returning what it wrote.
const setDesired = chunkedStatement<{ host: string; version: number | null; at: number }, { name: string; desiredVersion: number | null; lastSeenAt: number | null }>(
  'test_hosts_desired',
  (q, { hosts }, size) => {
    const v = rowValues({ host: 'text', version: 'bigint' }, size);
    const returns = { name: hosts.name, desiredVersion: hosts.desiredVersion, lastSeenAt: hosts.lastSeenAt };
    return {
      query: q.update(hosts).set({ desiredVersion: v.of.version, lastSeenAt: sql`${shared('at')}` }).from(v.from).where(eq(hosts.name, v.of.host)).returning(returns),
      returns,
    };
  },
);

// A select by keys: its rows mapped back as drizzle maps them.
const selectHosts = chunkedStatement<{ name: string }, { name: string; tags: string[]; paused: boolean; desiredVersion: number | null }>(
  'test_hosts_select',
  (q, { hosts }, size) => {
    const returns = { name: hosts.name, tags: hosts.tags, paused: hosts.paused, desiredVersion: hosts.desiredVersion };
    return { query: q.select(returns).from(hosts).where(rowKeysIn(hosts.name, 'name', size)), returns };
  },
);

function host(prefix: string, i: number): HostRow {
  return { name: `${prefix}-${i}`, publicKey: `key-${i}`, tags: i % 3 === 0 ? [] : [`t${i}`, 'fleet'], lastSeenAt: i % 2 === 0 ? null : 1_000 + i, paused: i % 4 === 1 };
}

describe.each(storeEngines)('chunkedStatement ($name)', (engine) => {
  let store: Store;
  freshStorePerTest(engine, (opened) => (store = opened));

  const stored = async (names: string[]) => {
    const { hosts } = store.t;
    return store.q
      .select({ name: hosts.name, publicKey: hosts.publicKey, tags: hosts.tags, lastSeenAt: hosts.lastSeenAt, paused: hosts.paused, desiredVersion: hosts.desiredVersion })
      .from(hosts)
      .where(inArray(hosts.name, names))
      .orderBy(asc(hosts.name));
  };
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  it('writes any number of rows, in every chunk size, each value in its own row and column, nulls and encoded columns included', async () => {
    // 341 = 256 + 64 + 16 + 4 + 1: every prepared size at once; the others land on sums of them.
    for (const count of [1, 3, 4, 5, 16, 21, 64, 257, 341, 600]) {
      const rows = rowIndexes(count).map((i) => host(`n${count}`, i));
      await store.transaction(() => insertHosts(store, rows));
      expect(await stored(rows.map((row) => row.name))).toEqual(rows.map((row) => ({ ...row, desiredVersion: null })).sort(byName));
    }
  });

  it('updates the rows its keys name from each row’s own values and a shared one, and leaves every other row as it was', async () => {
    const rows = rowIndexes(30).map((i) => host('h', i));
    await store.transaction(() => insertHosts(store, rows));
    // A null among the values: PostgreSQL types the VALUES list's parameters text, and a null cast to bigint stays null.
    const chosen = rows.filter((_, i) => i % 3 !== 2).map((row, i) => ({ host: row.name, version: i === 4 ? null : 100 + i, at: 77 }));
    const returned = await store.transaction(() => setDesired(store, chosen));
    // Returned rows come back under the selection's names with the columns' types (numbers, not PostgreSQL's bigint strings).
    expect(returned.sort(byName)).toEqual(chosen.map(({ host, version }) => ({ name: host, desiredVersion: version, lastSeenAt: 77 })).sort(byName));
    const versions = new Map(chosen.map(({ host, version }) => [host, version]));
    expect(await stored(rows.map((row) => row.name))).toEqual(
      rows
        .map((row) => (versions.has(row.name) ? { ...row, desiredVersion: versions.get(row.name)!, lastSeenAt: 77 } : { ...row, desiredVersion: null }))
        .sort(byName),
    );
  });

  it('maps a select’s rows back as drizzle does: JSON parsed, booleans as booleans, integers as numbers', async () => {
    const rows = rowIndexes(6).map((i) => host('s', i));
    await store.transaction(() => insertHosts(store, rows));
    await store.transaction(() => setDesired(store, [{ host: 's-1', version: 9, at: 1 }]));
    const found = await selectHosts(store, [{ name: 's-0' }, { name: 's-1' }, { name: 's-5' }, { name: 'nobody' }]);
    expect(found.sort(byName)).toEqual([
      { name: 's-0', tags: [], paused: false, desiredVersion: null },
      { name: 's-1', tags: ['t1', 'fleet'], paused: true, desiredVersion: 9 },
      { name: 's-5', tags: ['t5', 'fleet'], paused: true, desiredVersion: null },
    ]);
  });

  it('a row without a field the statement needs fails, naming the field', async () => {
    const { tags: _, ...missing } = host('m', 3);
    await expect(store.transaction(() => insertHosts(store, [host('m', 1), missing as HostRow]))).rejects.toThrow(/test_hosts_insert: a row has no field "tags"/);
    expect(await stored(['m-1', 'm-3'])).toEqual([]);
  });

  it('a host status update skips a host whose stored status comes from a newer report, and writes the others', async () => {
    await store.transaction(() => insertHosts(store, [host('g', 1), host('g', 2), host('g', 3)]));
    const { hosts } = store.t;
    await store.transaction(() => writeHostStatus(store, 10, new Map([['g-1', sampleReport(5, 'healthy')], ['g-2', sampleReport(5, 'healthy')]])));
    const written = await store.transaction(() =>
      writeHostStatus(store, 20, new Map([['g-1', sampleReport(3, 'failed')], ['g-2', sampleReport(6, 'accepted')], ['g-3', sampleReport(1, 'accepted')]])),
    );
    expect([...written].sort()).toEqual(['g-2', 'g-3']);
    const status = await store.q
      .select({ name: hosts.name, seq: hosts.lastReportSeq, phase: hosts.phase, lastSeenAt: hosts.lastSeenAt, currentSystem: hosts.currentSystem })
      .from(hosts)
      .where(inArray(hosts.name, ['g-1', 'g-2', 'g-3']))
      .orderBy(asc(hosts.name));
    expect(status).toEqual([
      { name: 'g-1', seq: 5, phase: 'healthy', lastSeenAt: 10, currentSystem: sampleReport(5, 'healthy').currentSystem },
      { name: 'g-2', seq: 6, phase: 'accepted', lastSeenAt: 20, currentSystem: sampleReport(6, 'accepted').currentSystem },
      { name: 'g-3', seq: 1, phase: 'accepted', lastSeenAt: 20, currentSystem: sampleReport(1, 'accepted').currentSystem },
    ]);
  });
});
