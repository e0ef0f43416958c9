import { AsyncLock } from './async-lock.js';
import type { Store } from './store.js';

/**
 * The busy writers of one replica, one at a time: the report group commit, the rollout engine's
 * transactions and the presence last-seen writes. On PostgreSQL (SERIALIZABLE) they overlap on the
 * same rows and index pages — a group moves members in `rollout_hosts` and updates `hosts`, a tick
 * counts those members and moves the rollout, presence updates `hosts` — and overlapping at a fleet's pace their predicate locks formed read/write cycles until
 * the conflict retries ran out (500 on agent reports, issue 16). Queued here, only other replicas
 * contend, which the retries absorb. A store with one writer (SQLite: one connection behind its own lock)
 * is left alone.
 */
const lanes = new WeakMap<Store, AsyncLock>();

/**
 * Runs `work` (which opens a transaction of `store`) in the replica's write lane. Called inside a
 * transaction of `store` it runs at once: that transaction is a savepoint of one already in the
 * lane (or outside it by design), and waiting would deadlock on ourselves.
 */
export function inWriteLane<T>(store: Store, work: () => Promise<T>): Promise<T> {
  if (!store.concurrentWriters || store.q !== store.db) return work();
  let lane = lanes.get(store);
  if (!lane) lanes.set(store, (lane = new AsyncLock()));
  return lane.run(work);
}
