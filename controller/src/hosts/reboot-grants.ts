import { and, asc, eq, inArray, isNotNull, lt, lte, sql } from 'drizzle-orm';
import { PROTOCOL_VERSION, type RebootGrantAnswer } from '../../../shared/src/protocol.js';
import type { Clock } from '../clock.js';
import type { Store, StoreTx } from '../db/store.js';
import { appendEvent } from '../events.js';
import { byRowKey, chunkedStatement, rowKeysIn, rowValue } from '../db/chunked.js';

/**
 * The fleet reboot lock. A host that must reboot asks first; the controller grants while fewer
 * than `maxConcurrent` hosts hold a lease, and fewer than each narrower lock allows: a tag's
 * maxRebooting among the hosts with that tag, a rollout's maxRebooting among its hosts. A lease ends when its host reports a terminal phase
 * for that manifest (releaseRebootLeases, from report storing) or after `leaseMs` (a host that
 * never came back; the rollout counts it failed at its offline deadline meanwhile).
 */

export interface RebootLockOptions {
  maxConcurrent: number;
  leaseMs: number;
}

export const DEFAULT_REBOOT_LOCK: RebootLockOptions = { maxConcurrent: 1, leaseMs: 30 * 60_000 };

/** One reboot lock: `fleet`, `tag T` or `rollout R`, and the hosts holding a lease under it. */
interface Lock {
  name: string;
  max: number;
  holders: string[];
}

/** A lease and the tags of its host. */
interface Holder {
  host: string;
  tags: string[];
}

/**
 * The locks beside the fleet-wide one that apply to this host: each of its tags with a
 * maxRebooting (tag_settings), and the rollout of the manifest it reboots for, when that rollout
 * set maxRebooting. A lease counts under a rollout through the manifest it was granted for.
 * Tags and the rollout's spec are JSON, matched here rather than with either engine's JSON functions.
 */
async function narrowerLocks(store: Store, tx: StoreTx, host: string, manifestVersion: number, holders: readonly Holder[]): Promise<Lock[]> {
  const { hosts, manifests, rebootLeases, rollouts, tagSettings } = store.t;
  const locks: Lock[] = [];
  const [own] = await tx.select({ tags: hosts.tags }).from(hosts).where(eq(hosts.name, host)).limit(1);
  const tags = own?.tags ?? [];
  const tagLocks =
    tags.length === 0
      ? []
      : await tx
          .select({ tag: tagSettings.tag, max: tagSettings.maxRebooting })
          .from(tagSettings)
          .where(and(isNotNull(tagSettings.maxRebooting), inArray(tagSettings.tag, tags)))
          .orderBy(asc(tagSettings.tag));
  for (const { tag, max } of tagLocks) {
    locks.push({ name: `tag ${tag}`, max: max!, holders: holders.filter((h) => h.tags.includes(tag)).map((h) => h.host) });
  }
  const [rollout] = await tx
    .select({ id: rollouts.id, spec: rollouts.spec })
    .from(manifests)
    .innerJoin(rollouts, eq(rollouts.id, manifests.rolloutId))
    .where(and(eq(manifests.host, host), eq(manifests.version, manifestVersion)))
    .limit(1);
  const max = (rollout?.spec as { maxRebooting?: unknown } | undefined)?.maxRebooting;
  if (rollout && typeof max === 'number' && max > 0) {
    const under = await tx
      .select({ host: rebootLeases.host })
      .from(rebootLeases)
      .innerJoin(manifests, and(eq(manifests.host, rebootLeases.host), eq(manifests.version, rebootLeases.manifestVersion)))
      .where(eq(manifests.rolloutId, rollout.id))
      .orderBy(asc(rebootLeases.grantedAt), asc(rebootLeases.host));
    locks.push({ name: `rollout ${rollout.id}`, max, holders: under.map((h) => h.host) });
  }
  return locks;
}

/** How soon a refused host asks again: often enough that the lock passes on within seconds. */
const RETRY_AFTER_MS = 2_000;

export async function requestRebootGrant(store: Store, clock: Clock, options: RebootLockOptions, host: string, manifestVersion: number): Promise<RebootGrantAnswer> {
  const { hosts, rebootLeases } = store.t;
  const now = clock.now();
  return store.transaction(async (tx): Promise<RebootGrantAnswer> => {
    await tx.delete(rebootLeases).where(lt(rebootLeases.grantedAt, now - options.leaseMs));
    const [own] = await tx.select().from(rebootLeases).where(eq(rebootLeases.host, host)).limit(1);
    if (own) {
      // Asked again (the answer was lost, or a reboot back): the lease it holds covers it.
      await tx.update(rebootLeases).set({ manifestVersion: Math.max(own.manifestVersion, manifestVersion) }).where(eq(rebootLeases.host, host));
      return { protocol: PROTOCOL_VERSION, granted: true, reason: '', retryAfterMs: 0 };
    }
    const rows = await tx
      .select({ host: rebootLeases.host, tags: hosts.tags })
      .from(rebootLeases)
      .leftJoin(hosts, eq(hosts.name, rebootLeases.host))
      .orderBy(asc(rebootLeases.grantedAt), asc(rebootLeases.host));
    const holders = rows.map((row) => ({ host: row.host, tags: row.tags ?? [] }));
    const locks: Lock[] = [{ name: 'fleet', max: options.maxConcurrent, holders: holders.map((h) => h.host) }, ...(await narrowerLocks(store, tx, host, manifestVersion, holders))];
    const full = locks.find((lock) => lock.holders.length >= lock.max);
    if (full) {
      const names = full.holders;
      const where = full.name === 'fleet' ? '' : ` of ${full.name}`;
      return {
        protocol: PROTOCOL_VERSION,
        granted: false,
        reason: `${names.length} host${names.length === 1 ? '' : 's'}${where} rebooting (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}); at most ${full.max}${where} at once`,
        retryAfterMs: RETRY_AFTER_MS,
      };
    }
    await tx.insert(rebootLeases).values({ host, manifestVersion, grantedAt: now });
    await appendEvent(store, {
      host,
      at: now,
      kind: 'reboot-granted',
      actor: 'controller',
      data: {
        manifestVersion,
        rebooting: holders.length + 1,
        maxConcurrent: options.maxConcurrent,
        locks: locks.map((l) => ({ name: l.name, rebooting: l.holders.length + 1, max: l.max })),
      },
    });
    return { protocol: PROTOCOL_VERSION, granted: true, reason: '', retryAfterMs: 0 };
  });
}

// A delete has no FROM on SQLite: each lease's limit is a `case` on its host (few rows: terminal reports of rebooting hosts).
const releaseChunks = chunkedStatement<{ host: string; version: number }, { host: string; manifestVersion: number }>(
  'reboot_leases_release',
  (q, { rebootLeases }, size) => {
    const limit = byRowKey(rebootLeases.host, 'host', size, (i) => sql`cast(${rowValue('version', i)} as bigint)`);
    const returns = { host: rebootLeases.host, manifestVersion: rebootLeases.manifestVersion };
    return {
      query: q
        .delete(rebootLeases)
        .where(and(rowKeysIn(rebootLeases.host, 'host', size), lte(rebootLeases.manifestVersion, limit)))
        .returning(returns),
      returns,
    };
  },
);

/**
 * Terminal reports end their hosts' leases: each host's lease for `upTo`'s version of it or an
 * older one, in the caller's transaction, a few statements for any number of hosts
 * (db/chunked.ts). Returns the version of each lease ended, by host.
 */
export async function releaseRebootLeases(store: Store, upTo: ReadonlyMap<string, number>): Promise<Map<string, number>> {
  const released = new Map<string, number>();
  for (const row of await releaseChunks(store, [...upTo].map(([host, version]) => ({ host, version })))) released.set(row.host, row.manifestVersion);
  return released;
}
