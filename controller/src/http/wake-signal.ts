/**
 * What a live stream waits on between writes: `sleep(ms)` resolves after ms, or at once when
 * `wake()` is called (a change to send, or the client went away). A wake with nobody asleep is
 * dropped: the stream re-reads everything after each sleep anyway.
 */
export interface WakeSignal {
  wake(): void;
  sleep(ms: number): Promise<void>;
}

export function wakeSignal(): WakeSignal {
  let wakeSleeper: (() => void) | null = null;
  return {
    wake: () => wakeSleeper?.(),
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
