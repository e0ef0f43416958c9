/**
 * What a loop waits on between rounds (a live stream between writes, the agent's outbox between
 * retries): `sleep(ms)` resolves after ms, or at once when `wake()` is called (a change to send,
 * the client went away, a new report). A wake with nobody asleep is dropped — the loop re-reads
 * everything after each sleep anyway — `sleeping` says whether a wake would reach one.
 */
export interface WakeSignal {
  wake(): void;
  readonly sleeping: boolean;
  sleep(ms: number): Promise<void>;
}

export function wakeSignal(): WakeSignal {
  let wakeSleeper: (() => void) | null = null;
  return {
    wake: () => wakeSleeper?.(),
    get sleeping() {
      return wakeSleeper !== null;
    },
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done(): void {
          clearTimeout(timer);
          wakeSleeper = null;
          resolve();
        }
        wakeSleeper = done;
      }),
  };
}
