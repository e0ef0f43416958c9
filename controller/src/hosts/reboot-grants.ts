import { and, asc, eq, lt, lte } from 'drizzle-orm';
import { PROTOCOL_VERSION, type RebootGrantAnswer } from '../../../shared/src/protocol.js';
import type { Clock } from '../clock.js';
import type { Db } from '../db/open.js';
import { rebootLeases } from '../db/schema.js';
import { appendEvent } from '../events.js';

/**
 * The fleet reboot lock. A host that must reboot asks first; the controller grants while fewer
 * than `maxConcurrent` hosts hold a lease. A lease ends when its host reports a terminal phase
 * for that manifest (releaseRebootLease, from report storing) or after `leaseMs` (a host that
 * never came back; the rollout counts it failed at its offline deadline meanwhile).
 */

export interface RebootLockOptions {
  maxConcurrent: number;
  leaseMs: number;
}

export const DEFAULT_REBOOT_LOCK: RebootLockOptions = { maxConcurrent: 1, leaseMs: 30 * 60_000 };

/** How soon a refused host asks again: often enough that the lock passes on within seconds. */
const RETRY_AFTER_MS = 2_000;

export function requestRebootGrant(db: Db, clock: Clock, options: RebootLockOptions, host: string, manifestVersion: number): RebootGrantAnswer {
  const now = clock.now();
  return db.transaction((tx) => {
    tx.delete(rebootLeases).where(lt(rebootLeases.grantedAt, now - options.leaseMs)).run();
    const own = tx.select().from(rebootLeases).where(eq(rebootLeases.host, host)).get();
    if (own) {
      // Asked again (the answer was lost, or a reboot back): the lease it holds covers it.
      tx.update(rebootLeases).set({ manifestVersion: Math.max(own.manifestVersion, manifestVersion) }).where(eq(rebootLeases.host, host)).run();
      return { protocol: PROTOCOL_VERSION, granted: true, reason: '', retryAfterMs: 0 };
    }
    const holders = tx.select({ host: rebootLeases.host }).from(rebootLeases).orderBy(asc(rebootLeases.grantedAt)).all();
    if (holders.length >= options.maxConcurrent) {
      const names = holders.map((h) => h.host);
      return {
        protocol: PROTOCOL_VERSION,
        granted: false,
        reason: `${names.length} host${names.length === 1 ? '' : 's'} rebooting (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}); at most ${options.maxConcurrent} at once`,
        retryAfterMs: RETRY_AFTER_MS,
      };
    }
    tx.insert(rebootLeases).values({ host, manifestVersion, grantedAt: now }).run();
    appendEvent(tx, { host, at: now, kind: 'reboot-granted', actor: 'controller', data: { manifestVersion, rebooting: holders.length + 1, maxConcurrent: options.maxConcurrent } });
    return { protocol: PROTOCOL_VERSION, granted: true, reason: '', retryAfterMs: 0 };
  });
}

/** A terminal report ends the host's lease for that manifest (and any older one). */
export function releaseRebootLease(db: Db, host: string, manifestVersion: number): boolean {
  const deleted = db.delete(rebootLeases).where(and(eq(rebootLeases.host, host), lte(rebootLeases.manifestVersion, manifestVersion))).run();
  return deleted.changes > 0;
}
