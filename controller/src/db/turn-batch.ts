import type { Store } from './store.js';
import { outsideTransactions } from './tx-scope.js';

export interface TurnBatch<Item> {
  /** Queues `item`; resolves once it is committed (with the others of its turn), rejects if its write failed. */
  add(item: Item): Promise<void>;
  /** Resolves when everything queued so far is written (or failed): before the store closes. */
  drained(): Promise<void>;
}

/**
 * Small writes that stand on their own (a login's session, a socket's connected event), written
 * with those of the same event-loop turn in one transaction, in the order they were queued: at
 * 10,000 agents connecting, a transaction per login was 10,000 commits. One batch is written at a
 * time and each takes the queue whole, so order holds across batches too.
 *
 * When a batch's transaction fails, its items are written again one by one, in order: one bad
 * item (a session of a host removed a moment ago) then fails only its own caller, not every login
 * of its turn. The batch runs outside any transaction its first caller was in: it is shared by
 * callers that are not, and must not commit or roll back with that one's.
 */
export function turnBatch<Item>(store: Store, write: (items: readonly Item[]) => Promise<unknown>): TurnBatch<Item> {
  type Entry = { item: Item; resolve(): void; reject(error: unknown): void };
  let queue: Entry[] = [];
  let writing: Promise<void> = Promise.resolve();
  let scheduled = false;

  const commit = (items: readonly Item[]) => store.transaction(async () => void (await write(items)));

  const writeQueued = async (): Promise<void> => {
    scheduled = false;
    const batch = queue;
    queue = [];
    try {
      await commit(batch.map(({ item }) => item));
      for (const entry of batch) entry.resolve();
      return;
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
    }
    for (const entry of batch) {
      try {
        await commit([entry.item]);
        entry.resolve();
      } catch (error) {
        entry.reject(error);
      }
    }
  };

  return {
    add(item) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (scheduled) return;
        scheduled = true;
        outsideTransactions(() =>
          setImmediate(() => {
            writing = writing.then(writeQueued);
          }),
        );
      });
    },
    async drained() {
      // A batch scheduled but not chained yet is chained on the next turn: wait for that turn too.
      while (scheduled || queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
      await writing;
    },
  };
}
