import { eq, sql } from 'drizzle-orm';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../../controller/src/db/store.js';
import { LeaseNotHeld } from '../../../controller/src/db/store-errors.js';
import { stopPostgresTestServer } from '../postgres-database.js';
import { freshStorePerTest, storeEngines } from '../store-engines.js';

afterAll(async () => {
  await stopPostgresTestServer();
});

/** A promise and the function that resolves it: lets a test hold a transaction open at a chosen point. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function hostNames(store: Store): Promise<string[]> {
  const rows = await store.db.select({ name: store.t.hosts.name }).from(store.t.hosts).orderBy(store.t.hosts.name);
  return rows.map((row) => row.name);
}

async function addHost(store: Store, name: string): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.insert(store.t.hosts).values({ name, publicKey: 'key' });
  });
}

describe.each(storeEngines)('store on $name', (engine) => {
  let store: Store;
  freshStorePerTest(engine, (opened) => (store = opened));

  it('commits all writes of a transaction, and none of them when its body throws', async () => {
    await expect(
      store.transaction(async (tx) => {
        await tx.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key' });
        await tx.insert(store.t.hosts).values({ name: 'web-2', publicKey: 'key' });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await hostNames(store)).toEqual([]);

    const result = await store.transaction(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key' });
      await tx.insert(store.t.hosts).values({ name: 'web-2', publicKey: 'key' });
      return 'done';
    });
    expect(result).toBe('done');
    expect(await hostNames(store)).toEqual(['web-1', 'web-2']);
  });

  it('q reads the caller\'s own transaction inside a body, and committed data outside it', async () => {
    const seen = await store.transaction(async () => {
      await store.q.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key' });
      const inside = await store.q.select({ name: store.t.hosts.name }).from(store.t.hosts);
      const outside = await store.db.select({ name: store.t.hosts.name }).from(store.t.hosts);
      return { inside: inside.map((row) => row.name), outside: outside.map((row) => row.name) };
    });
    expect(seen).toEqual({ inside: ['web-1'], outside: [] });
    expect((await store.q.select({ name: store.t.hosts.name }).from(store.t.hosts)).map((row) => row.name)).toEqual(['web-1']);
  });

  it('rows returns raw rows keyed by their SQL names, 64-bit integers as numbers', async () => {
    await addHost(store, 'web-1');
    await addHost(store, 'web-2');
    const rows = await store.rows<{ n: number; name: string }>(sql`select count(*) as n, max(name) as name from hosts`);
    expect(rows).toEqual([{ n: 2, name: 'web-2' }]);
    const inside = await store.transaction(async () => {
      await store.q.insert(store.t.hosts).values({ name: 'web-3', publicKey: 'key' });
      return store.rows<{ n: number }>(sql`select count(*) as n from hosts`);
    });
    expect(inside).toEqual([{ n: 3 }]);
  });

  it('rolls back a transaction whose statement fails, keeping earlier commits', async () => {
    await addHost(store, 'web-1');
    await expect(
      store.transaction(async (tx) => {
        await tx.insert(store.t.hosts).values({ name: 'web-2', publicKey: 'key' });
        await tx.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key' });
      }),
    ).rejects.toThrow();
    expect(await hostNames(store)).toEqual(['web-1']);
  });

  it('does not show a transaction’s writes to reads outside it until it commits', async () => {
    const written = gate();
    const release = gate();
    const transaction = store.transaction(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key' });
      // Inside, the transaction sees its own write.
      expect((await tx.select().from(store.t.hosts)).map((row) => row.name)).toEqual(['web-1']);
      written.open();
      await release.opened;
    });
    await written.opened;
    expect(await hostNames(store)).toEqual([]);
    release.open();
    await transaction;
    expect(await hostNames(store)).toEqual(['web-1']);
  });

  it('loses no update when concurrent transactions read and increment one counter', async () => {
    await store.transaction(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key', desiredVersion: 0 });
    });
    const hosts = store.t.hosts;
    const increment = () =>
      store.transaction(async (tx) => {
        const [row] = await tx.select({ version: hosts.desiredVersion }).from(hosts).where(eq(hosts.name, 'web-1'));
        // Give the other transactions time to read the same value: the lost-update window.
        await sleep(20);
        await tx.update(hosts).set({ desiredVersion: row!.version! + 1 }).where(eq(hosts.name, 'web-1'));
      });
    await Promise.all([increment(), increment(), increment(), increment()]);
    const [row] = await store.db.select({ version: hosts.desiredVersion }).from(hosts).where(eq(hosts.name, 'web-1'));
    expect(row!.version).toBe(4);
  });

  it('admits exactly up to a limit with read-committed conditional updates of one row at once', async () => {
    await store.transaction(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: 'web-1', publicKey: 'key', desiredVersion: 0 });
    });
    const hosts = store.t.hosts;
    const spend = () =>
      store.transaction(
        async (tx) => {
          const spent = await tx
            .update(hosts)
            .set({ desiredVersion: sql`${hosts.desiredVersion} + 1` })
            .where(sql`${hosts.name} = 'web-1' and ${hosts.desiredVersion} < 3`);
          // Hold the row until commit: the others wait for it and re-check the limit on what it committed.
          await sleep(20);
          return store.affected(spent);
        },
        { isolation: 'read-committed' },
      );
    const spent = await Promise.all(Array.from({ length: 6 }, spend));
    expect(spent.sort()).toEqual([0, 0, 0, 1, 1, 1]);
    const [row] = await store.db.select({ version: hosts.desiredVersion }).from(hosts).where(eq(hosts.name, 'web-1'));
    expect(row!.version).toBe(3);
  });

  it('refuses a serializable transaction inside a read-committed one, and nests a read-committed one', async () => {
    await store.transaction(
      async () => {
        await expect(store.transaction(async () => undefined)).rejects.toThrow('a serializable transaction cannot run inside a read-committed one');
        await store.transaction((tx) => tx.insert(store.t.hosts).values({ name: 'inner', publicKey: 'key' }), { isolation: 'read-committed' });
      },
      { isolation: 'read-committed' },
    );
    expect(await hostNames(store)).toEqual(['inner']);
  });

  it('runs a transaction started inside a transaction body as a savepoint of it', async () => {
    await store.transaction(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: 'outer', publicKey: 'key' });
      // Deeper in the call stack, code that knows nothing of the caller opens "its" transaction.
      await expect(
        store.transaction(async (inner) => {
          await inner.insert(store.t.hosts).values({ name: 'failed-inner', publicKey: 'key' });
          throw new Error('inner failure');
        }),
      ).rejects.toThrow('inner failure');
      await tx.transaction(async (inner) => {
        await inner.insert(store.t.hosts).values({ name: 'inner', publicKey: 'key' });
        await store.transaction(async (innermost) => {
          await innermost.insert(store.t.hosts).values({ name: 'innermost', publicKey: 'key' });
        });
      });
      // Outside, nothing yet: the savepoints commit with the enclosing transaction.
      expect(await hostNames(store)).toEqual([]);
    });
    expect(await hostNames(store)).toEqual(['inner', 'innermost', 'outer']);

    await expect(
      store.transaction(async () => {
        await store.transaction(async (inner) => {
          await inner.insert(store.t.hosts).values({ name: 'undone-with-outer', publicKey: 'key' });
        });
        throw new Error('outer failure');
      }),
    ).rejects.toThrow('outer failure');
    expect(await hostNames(store)).toEqual(['inner', 'innermost', 'outer']);
  });

  it('runs sibling savepoints started at once one after the other', async () => {
    await store.transaction(async () => {
      await Promise.all(
        ['a', 'b', 'c'].map((name) =>
          store.transaction(async (inner) => {
            await inner.insert(store.t.hosts).values({ name, publicKey: 'key' });
            await sleep(5);
            if (name === 'b') throw new Error('b fails alone');
          }).catch(() => undefined),
        ),
      );
    });
    expect(await hostNames(store)).toEqual(['a', 'c']);
  });

  it('counts the rows a write changed', async () => {
    await addHost(store, 'web-1');
    await addHost(store, 'web-2');
    const changed = await store.transaction(async (tx) => store.affected(await tx.update(store.t.hosts).set({ paused: true })));
    expect(changed).toBe(2);
  });

  it('delivers a notification published in a transaction once it commits, and drops it on rollback', async () => {
    const received: string[] = [];
    const first = gate();
    await store.notifications.subscribe('shoal_test', (payload) => {
      received.push(payload);
      first.open();
    });
    await expect(
      store.transaction(async () => {
        await store.notifications.publish('shoal_test', 'rolled-back');
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    await store.transaction(async () => {
      await store.notifications.publish('shoal_test', 'committed');
    });
    await first.opened;
    expect(received).toEqual(['committed']);
  });

  it('refuses a notification channel that is not a plain shoal_ name', async () => {
    await expect(store.notifications.publish('shoal_x; drop table hosts', 'p')).rejects.toThrow(/channel/);
    await expect(store.notifications.subscribe('other', () => undefined)).rejects.toThrow(/channel/);
  });

  it('runs fenced work only while the engine lease is held', async () => {
    const lease = store.engineLease({ pollMs: 100 });
    await expect(lease.fenced(async () => 'early')).rejects.toBeInstanceOf(LeaseNotHeld);
    const acquired = new Promise<void>((resolve) => lease.once('acquired', resolve));
    lease.start();
    await acquired;
    expect(lease.held).toBe(true);
    await lease.fenced(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: 'fenced', publicKey: 'key' });
      // Code it calls that opens a transaction joins the fenced one.
      await store.transaction(async (inner) => {
        await inner.insert(store.t.hosts).values({ name: 'fenced-inner', publicKey: 'key' });
      });
    });
    expect(await hostNames(store)).toEqual(['fenced', 'fenced-inner']);
    await lease.close();
    await expect(lease.fenced(async () => 'late')).rejects.toBeInstanceOf(LeaseNotHeld);
  });
});
