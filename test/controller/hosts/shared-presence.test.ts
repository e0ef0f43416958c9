import { describe, expect, it } from 'vitest';
import { Presence } from '../../../controller/src/hosts/presence.js';
import { STALE_AFTER_MS } from '../../../controller/src/hosts/shared-presence.js';
import { ManualClock } from '../helpers.js';
import { replicaDatabasePerTest } from '../postgres-database.js';

// Two replicas on one PostgreSQL database (issue 16): each sees the hosts the other holds, and
// stops seeing them once the other stops heartbeating (killed, no cleanup). Time is a manual clock;
// each replica's heartbeat loop is driven by calling heartbeat(), as its timer would.

const POLL_MS = 30_000;

describe('presence shared between replicas on PostgreSQL', () => {
  const shared = replicaDatabasePerTest();

  async function replicas(hosts: string[]) {
    const clock = new ManualClock();
    const store = await shared.replica('a');
    const a = new Presence(store, clock, POLL_MS);
    const b = new Presence(await shared.replica('b'), clock, POLL_MS);
    await store.transaction(async (tx) => {
      for (const name of hosts) await tx.insert(store.t.hosts).values({ name, publicKey: `key-${name}` });
    });
    return { a, b, clock };
  }

  it('shows a host connected to another replica, and offline once that replica stops heartbeating', async () => {
    const { a, b, clock } = await replicas(['web-1', 'web-2', 'web-3']);
    b.websocketOpened('web-1');
    b.polled('web-2');
    const releasePoll = b.holdPoll('web-3');
    await b.heartbeat();
    await a.heartbeat();
    expect([a.mode('web-1'), a.mode('web-2'), a.mode('web-3')]).toEqual(['websocket', 'polling', 'polling']);

    // A long-poll released and not renewed: polling until three poll intervals pass, then offline.
    releasePoll();
    clock.advance(3 * POLL_MS + 1);
    b.heard('web-1');
    await b.heartbeat();
    await a.heartbeat();
    expect([a.mode('web-1'), a.mode('web-2'), a.mode('web-3')]).toEqual(['websocket', 'offline', 'offline']);

    // B is killed: no close, no cleanup, its heartbeat row stays as it was.
    clock.advance(STALE_AFTER_MS);
    await a.heartbeat();
    expect(a.mode('web-1')).toBe('websocket');
    clock.advance(1);
    expect(a.mode('web-1')).toBe('offline');
    await a.heartbeat();
    expect(a.mode('web-1')).toBe('offline');
  });

  it('shows a host that moved from one replica to the other connected on both, whichever noticed first', async () => {
    const { a, b } = await replicas(['web-1', 'web-2']);
    b.websocketOpened('web-1');
    b.websocketOpened('web-2');
    await b.heartbeat();
    await a.heartbeat();

    // web-1 reconnects to A before B notices its old socket closed; B's close must not clear A's claim.
    a.websocketOpened('web-1');
    await a.heartbeat();
    b.websocketClosed('web-1');
    await b.heartbeat();
    expect(a.mode('web-1')).toBe('websocket');
    expect(b.mode('web-1')).toBe('websocket');

    // web-2 as well, but B's heartbeat asserts its claim again over A's while its old socket looks
    // open, and clears it when that socket closes: A's heartbeat claims it again.
    a.websocketOpened('web-2');
    await a.flush();
    await b.heartbeat();
    b.websocketClosed('web-2');
    await b.heartbeat();
    expect(b.mode('web-2')).toBe('offline');
    await a.heartbeat();
    await b.heartbeat();
    expect(b.mode('web-2')).toBe('websocket');
    expect(a.mode('web-2')).toBe('websocket');
  });

  it('drops the claims an earlier process with the same replica id left behind, and a stopped replica’s hosts at once', async () => {
    const { a, b, clock } = await replicas(['web-1']);
    b.websocketOpened('web-1');
    await b.heartbeat();
    await a.heartbeat();
    expect(a.mode('web-1')).toBe('websocket');

    // B restarts under the same id (a container's pid 1) before its heartbeat turned stale.
    const restarted = await shared.replica('b');
    const b2 = new Presence(restarted, clock, POLL_MS);
    await b2.heartbeat();
    await a.heartbeat();
    expect(a.mode('web-1')).toBe('offline');

    b2.websocketOpened('web-1');
    await b2.heartbeat();
    await a.heartbeat();
    expect(a.mode('web-1')).toBe('websocket');
    await b2.stop();
    await a.heartbeat();
    expect(a.mode('web-1')).toBe('offline');
  });
});
