import type { Store } from './db/store.js';
import { appendEvents, type NewEvent } from './events.js';

export interface EventBatch {
  /** Queues `event`; resolves once it is committed (with the others of its turn), rejects if that transaction failed (the caller logs it). */
  append(event: NewEvent): Promise<void>;
  /** Resolves when everything queued so far is written (or failed): before the store closes. */
  drained(): Promise<void>;
}

/**
 * Events that stand on their own (a socket connected or went away), written with those of the
 * same event-loop turn in one transaction, in the order they were queued. At 10,000 agents
 * connecting, a transaction per event was 10,000 commits; the order still holds because one
 * batch is written at a time and each takes the queue whole.
 */
export function eventBatch(store: Store): EventBatch {
  let queue: Array<{ event: NewEvent; resolve(): void; reject(error: unknown): void }> = [];
  let writing: Promise<void> = Promise.resolve();
  let scheduled = false;

  const write = async (): Promise<void> => {
    scheduled = false;
    const batch = queue;
    queue = [];
    try {
      await store.transaction(() => appendEvents(store, batch.map(({ event }) => event)));
      for (const entry of batch) entry.resolve();
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    }
  };

  return {
    append(event) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ event, resolve, reject });
        if (scheduled) return;
        scheduled = true;
        setImmediate(() => {
          writing = writing.then(write);
        });
      });
    },
    async drained() {
      // A batch scheduled but not chained yet is chained on the next turn: wait for that turn too.
      while (scheduled || queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
      await writing;
    },
  };
}
