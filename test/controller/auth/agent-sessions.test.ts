import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChallengeStore } from '../../../controller/src/auth/challenges.js';
import { SESSION_CACHE_MS, SESSION_TTL_MS, SessionStore } from '../../../controller/src/auth/sessions.js';
import { openStore, type Store } from '../../../controller/src/db/store.js';
import { silentLogger } from '../../../shared/src/logger.js';
import { ManualClock } from '../helpers.js';
import { storeEngines, type OpenedStore } from '../store-engines.js';

/**
 * Two replicas on one database. PostgreSQL: two stores, as two processes would have. SQLite allows
 * one store per file per process, so the second replica shares the store but none of the first
 * one's memory: whatever it accepts, it found in the database.
 */
describe.each(storeEngines)('agent sessions and challenges across replicas ($name)', (engine) => {
  let opened: OpenedStore;
  let other: Store | null;
  let a: Store;
  let b: Store;
  let clock: ManualClock;
  const logger = silentLogger();

  beforeEach(async () => {
    clock = new ManualClock();
    opened = await engine.open();
    a = opened.store;
    other = engine.name === 'postgres' ? await openStore({ database: opened.database, replicaId: 'b' }) : null;
    b = other ?? a;
    await a.transaction(async (tx) => {
      await tx.insert(a.t.hosts).values([
        { name: 'web-1', publicKey: 'a'.repeat(44) },
        { name: 'web-2', publicKey: 'b'.repeat(44) },
      ]);
    });
  });
  afterEach(async () => {
    await other?.close();
    await opened.dispose();
  });

  async function sessionStores(): Promise<[SessionStore, SessionStore]> {
    const stores: [SessionStore, SessionStore] = [new SessionStore(a, clock, logger), new SessionStore(b, clock, logger)];
    await Promise.all(stores.map((s) => s.ready()));
    return stores;
  }

  it('accepts on one replica a session another issued, and stores only its hash', async () => {
    const [first, second] = await sessionStores();
    const session = await first.create('web-1');
    expect(await second.hostOf(session.token)).toBe('web-1');
    expect(await second.hostOf(`${session.token}x`)).toBeNull();
    const rows = await a.db.select().from(a.t.agentSessions);
    expect(rows).toEqual([{ tokenHash: expect.stringMatching(/^[0-9a-f]{64}$/), host: 'web-1', expiresAt: session.expiresAt }]);
    expect(JSON.stringify(rows)).not.toContain(session.token);
  });

  it('creates the sessions of logins that arrive together, each valid on its own; a host unknown to the database fails alone', async () => {
    const [first, second] = await sessionStores();
    const logins = await Promise.allSettled(['web-1', 'web-gone', 'web-2'].map((host) => first.create(host)));
    expect(logins.map((login) => login.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const [web1, , web2] = logins.map((login) => (login.status === 'fulfilled' ? login.value : null));
    expect(await second.hostOf(web1!.token)).toBe('web-1');
    expect(await second.hostOf(web2!.token)).toBe('web-2');
    const hosts = await a.db.select({ host: a.t.agentSessions.host }).from(a.t.agentSessions);
    expect(hosts.map((row) => row.host).sort()).toEqual(['web-1', 'web-2']);
  });

  it('refuses an expired session and deletes it', async () => {
    const [first, second] = await sessionStores();
    const session = await first.create('web-1');
    expect(await first.hostOf(session.token)).toBe('web-1');
    clock.advance(SESSION_TTL_MS);
    expect(await first.hostOf(session.token)).toBeNull();
    expect(await second.hostOf(session.token)).toBeNull();
    expect(await a.db.select().from(a.t.agentSessions)).toEqual([]);
  });

  it('ends a revoked host’s sessions on every replica at once, even one that has just validated them', async () => {
    const [first, second] = await sessionStores();
    const web1 = await first.create('web-1');
    const web2 = await first.create('web-2');
    // The second replica has validated (and may cache) both sessions.
    expect(await second.hostOf(web1.token)).toBe('web-1');
    expect(await second.hostOf(web2.token)).toBe('web-2');
    const closedThere: string[] = [];
    second.onHostRevoked((host) => closedThere.push(host));
    await first.revokeHost('web-1');
    // The clock stands still: only the revocation can end what the second replica validated.
    await expect.poll(() => closedThere).toEqual(['web-1']);
    expect(await second.hostOf(web1.token)).toBeNull();
    expect(await first.hostOf(web1.token)).toBeNull();
    expect(await second.hostOf(web2.token)).toBe('web-2');
  });

  it('deletes a removed host’s sessions with it', async () => {
    const [first] = await sessionStores();
    const session = await first.create('web-1');
    await a.transaction(async (tx) => {
      await tx.delete(a.t.hosts);
    });
    expect(await a.db.select().from(a.t.agentSessions)).toEqual([]);
    // Past the cache, the database decides.
    clock.advance(SESSION_CACHE_MS);
    expect(await first.hostOf(session.token)).toBeNull();
  });

  it('sweeps sessions nobody presents again', async () => {
    const [first] = await sessionStores();
    await first.create('web-1');
    clock.advance(SESSION_TTL_MS - 1);
    const live = await first.create('web-2');
    expect(await first.sweepExpired()).toBe(0);
    clock.advance(1);
    expect(await first.sweepExpired()).toBe(1);
    expect(await first.hostOf(live.token)).toBe('web-2');
  });

  it('lets a challenge issued on one replica be answered on another, once', async () => {
    const issuer = new ChallengeStore(a, clock);
    const answerer = new ChallengeStore(b, clock);
    const issued = await issuer.issue('web-1', '10.0.0.1');
    if (!issued.ok) throw new Error('expected a nonce');
    expect(await answerer.consume('web-1', issued.nonce)).toEqual({ ok: true });
    expect(await issuer.consume('web-1', issued.nonce)).toEqual({ ok: false, reason: 'unknown-nonce' });
  });

  it('accepts a challenge answered on two replicas at the same moment exactly once', async () => {
    const issuer = new ChallengeStore(a, clock);
    const answerer = new ChallengeStore(b, clock);
    for (let round = 0; round < 5; round++) {
      const issued = await issuer.issue('web-1', '10.0.0.1');
      if (!issued.ok) throw new Error('expected a nonce');
      const answers = await Promise.all([issuer.consume('web-1', issued.nonce), answerer.consume('web-1', issued.nonce)]);
      expect(answers.filter((answer) => answer.ok)).toHaveLength(1);
      expect(answers).toContainEqual({ ok: false, reason: 'unknown-nonce' });
    }
  });

  it('refuses an expired nonce and one answered for another host, spending both', async () => {
    const challenges = new ChallengeStore(a, clock);
    const late = await challenges.issue('web-1');
    const stolen = await challenges.issue('web-1');
    if (!late.ok || !stolen.ok) throw new Error('expected nonces');
    expect(await challenges.consume('web-2', stolen.nonce)).toEqual({ ok: false, reason: 'wrong-host' });
    expect(await challenges.consume('web-1', stolen.nonce)).toEqual({ ok: false, reason: 'unknown-nonce' });
    clock.advance(60_000);
    expect(await challenges.consume('web-1', late.nonce)).toEqual({ ok: false, reason: 'expired-nonce' });
    expect(await a.db.select().from(a.t.agentChallenges)).toEqual([]);
  });

  it('caps pending challenges per address and frees the slots of expired ones, whose rows the sweep deletes', async () => {
    const challenges = new ChallengeStore(a, clock, 60_000, { total: 10, perAddress: 2 });
    expect((await challenges.issue('web-1', 'a')).ok).toBe(true);
    expect((await challenges.issue('web-1', 'a')).ok).toBe(true);
    expect(await challenges.issue('web-1', 'a')).toEqual({ ok: false, scope: 'address', limit: 2 });
    expect(await a.db.select().from(a.t.agentChallenges)).toHaveLength(2);
    clock.advance(60_000);
    expect((await challenges.issue('web-1', 'a')).ok).toBe(true);
    expect(challenges.size).toBe(1);
    expect(await challenges.sweepExpired()).toBe(2);
    expect(await a.db.select().from(a.t.agentChallenges)).toHaveLength(1);
    const issued = await challenges.issue('web-1', 'a');
    if (!issued.ok) throw new Error('expected a nonce');
    expect(await challenges.consume('web-1', issued.nonce)).toEqual({ ok: true });
    expect(challenges.pendingFrom('a')).toBe(1);
  });
});
