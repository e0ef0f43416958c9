import { asc, eq } from 'drizzle-orm';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../../controller/src/db/store.js';
import { recordAgentVersion } from '../../../controller/src/hosts/agent-version.js';
import { hostDrift } from '../../../controller/src/hosts/drift.js';
import { createEnrollmentToken, listEnrollmentTokens, revokeEnrollmentToken } from '../../../controller/src/hosts/enrollment.js';
import { hostExists, hostPublicKey } from '../../../controller/src/hosts/lookup.js';
import { Presence } from '../../../controller/src/hosts/presence.js';
import { requestRebootGrant } from '../../../controller/src/hosts/reboot-grants.js';
import { forgetUnknownHost, listUnknownHosts, recordUnknownHost } from '../../../controller/src/hosts/unknown.js';
import { ManualClock, newHostKeys, storePath } from '../helpers.js';
import { stopPostgresTestServer } from '../postgres-database.js';
import { freshStorePerTest, storeEngines } from '../store-engines.js';

// The hosts module's queries on both engines: those that read JSON columns in code (drift, the
// reboot lock's tags), count rows or depend on rows changed, which differ between the engines.

afterAll(async () => {
  await stopPostgresTestServer();
});

async function addHosts(store: Store, names: string[], tags: string[] = []): Promise<void> {
  await store.transaction(async (tx) => {
    for (const name of names) await tx.insert(store.t.hosts).values({ name, publicKey: `key-${name}`, tags });
  });
}

describe.each(storeEngines)('hosts on $name', (engine) => {
  let store: Store;
  const clock = new ManualClock();
  freshStorePerTest(engine, (opened) => (store = opened));

  it('finds drift back past many reports: the system the last activation left, and when another was first reported', async () => {
    await addHosts(store, ['web-1']);
    const expected = storePath('expected', 'a');
    const running = storePath('running', 'b');
    await store.transaction(async (tx) => {
      const { reports } = store.t;
      await tx.insert(reports).values({ host: 'web-1', seq: 1, receivedAt: 1_000, body: { phase: 'healthy', currentSystem: expected } });
      // More than one page of reports since the activation ended.
      for (let seq = 2; seq <= 250; seq++) {
        await tx.insert(reports).values({ host: 'web-1', seq, receivedAt: seq * 1_000, body: { phase: 'reconciled', currentSystem: seq < 5 ? expected : running } });
      }
    });
    const host = { name: 'web-1', phase: 'reconciled', currentSystem: running, reportedVersion: 1, desired: { version: 1, storePath: expected } };
    expect(await hostDrift(store, host)).toEqual({ running, expected, detectedAt: new Date(5_000).toISOString() });
    // Running what the activation left: no drift.
    expect(await hostDrift(store, { ...host, currentSystem: expected })).toBeNull();
  });

  it('sees no drift when no activation ever ended', async () => {
    await addHosts(store, ['web-1']);
    await store.transaction(async (tx) => {
      await tx.insert(store.t.reports).values({ host: 'web-1', seq: 1, receivedAt: 1_000, body: { phase: 'reconciled', currentSystem: storePath('x', 'c') } });
    });
    const drift = await hostDrift(store, { name: 'web-1', phase: 'reconciled', currentSystem: storePath('x', 'c'), reportedVersion: 1, desired: { version: 1, storePath: storePath('y', 'd') } });
    expect(drift).toBeNull();
  });

  it('refuses a reboot while the fleet lock or a tag lock of the host is full, matching the host’s tags', async () => {
    await addHosts(store, ['db-1', 'db-2'], ['db', 'eu']);
    await addHosts(store, ['web-1'], ['web', 'eu']);
    await store.transaction(async (tx) => {
      await tx.insert(store.t.tagSettings).values({ tag: 'db', maxRebooting: 1, updatedAt: 0, updatedBy: 'test' });
      await tx.insert(store.t.rebootLeases).values({ host: 'db-1', manifestVersion: 1, grantedAt: clock.now() });
    });
    const lock = { maxConcurrent: 5, leaseMs: 60_000 };
    expect(await requestRebootGrant(store, clock, lock, 'db-2', 1)).toMatchObject({ granted: false, reason: '1 host of tag db rebooting (db-1); at most 1 of tag db at once' });
    expect(await requestRebootGrant(store, clock, { ...lock, maxConcurrent: 1 }, 'web-1', 1)).toMatchObject({ granted: false, reason: '1 host rebooting (db-1); at most 1 at once' });
    // The lease a host holds covers its asking again.
    expect(await requestRebootGrant(store, clock, lock, 'db-1', 2)).toMatchObject({ granted: true });
  });

  it('writes the last-seen times of many hosts, off the caller’s path, when flushed', async () => {
    const names = Array.from({ length: 1_200 }, (_, i) => `h-${i}`);
    await addHosts(store, names);
    const presence = new Presence(store, clock, 30_000);
    const start = clock.now();
    for (const [i, name] of names.entries()) {
      clock.ms = start + i;
      presence.polled(name);
    }
    await presence.flush();
    const rows = await store.db.select({ name: store.t.hosts.name, lastSeenAt: store.t.hosts.lastSeenAt }).from(store.t.hosts);
    const seen = new Map(rows.map((row) => [row.name, row.lastSeenAt]));
    expect(names.every((name, i) => seen.get(name) === start + i)).toBe(true);
    expect(presence.mode('h-0')).toBe('polling');
  });

  it('keeps the last-seen time a report stored with the host’s status, not an older sighting still waiting to be written', async () => {
    await addHosts(store, ['web-1']);
    const presence = new Presence(store, clock, 30_000);
    presence.seen('web-1');
    await presence.flush();
    clock.ms += 10_000;
    // A report group stores a later time with the host's status, while a sighting from before it
    // is still to be written (its write takes what is waiting on the next turn).
    const storedAt = clock.now() + 1_000;
    await store.transaction(async (tx) => {
      await tx.update(store.t.hosts).set({ lastSeenAt: storedAt }).where(eq(store.t.hosts.name, 'web-1'));
    });
    presence.seen('web-1');
    presence.seenStored('web-1', storedAt);
    await presence.flush();
    const [row] = await store.db.select({ lastSeenAt: store.t.hosts.lastSeenAt }).from(store.t.hosts).where(eq(store.t.hosts.name, 'web-1'));
    expect(row!.lastSeenAt).toBe(storedAt);
    expect(presence.lastSeen('web-1', row!.lastSeenAt)).toBe(storedAt);
  });

  it('records unknown hosts once per key and forgets them by name', async () => {
    const key = newHostKeys('stray').publicKey;
    expect(await recordUnknownHost(store, clock, { name: 'stray', publicKey: key, watermark: { highestVersion: 4, highestFloor: 0 } })).toBe('recorded');
    expect(await recordUnknownHost(store, clock, { name: 'stray', publicKey: key, watermark: undefined })).toBe('recorded');
    expect(await listUnknownHosts(store, 'stray')).toEqual([expect.objectContaining({ name: 'stray', attempts: 2, highestVersion: null })]);
    expect(await forgetUnknownHost(store, 'stray')).toBe(1);
    expect(await forgetUnknownHost(store, 'stray')).toBe(0);
  });

  it('revokes an enrollment token once', async () => {
    const { id } = await createEnrollmentToken(store, clock, { ttlMs: 60_000, maxUses: 2, tags: ['web'] });
    expect(await revokeEnrollmentToken(store, clock, id)).toBe(true);
    expect(await revokeEnrollmentToken(store, clock, id)).toBe(false);
    expect(await listEnrollmentTokens(store, clock)).toEqual([expect.objectContaining({ id, tags: ['web'], state: 'revoked' })]);
  });

  it('looks up a host’s key and remembers the agent version it reports', async () => {
    await addHosts(store, ['web-1']);
    expect(await hostPublicKey(store, 'web-1')).toBe('key-web-1');
    expect(await hostExists(store, 'nope')).toBe(false);
    await recordAgentVersion(store, 'web-1', '1.2.3');
    await recordAgentVersion(store, 'web-1', undefined);
    const rows = await store.db.select({ agentVersion: store.t.hosts.agentVersion }).from(store.t.hosts).where(eq(store.t.hosts.name, 'web-1')).orderBy(asc(store.t.hosts.name));
    expect(rows).toEqual([{ agentVersion: '1.2.3' }]);
  });
});
