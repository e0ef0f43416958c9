/**
 * A first-come first-served async mutex: `run` waits for every earlier holder to finish before it
 * starts `work`. The SQLite store puts its writer connection behind one, because a transaction body
 * awaits between statements and nothing else may put statements on that connection meanwhile.
 */
export class AsyncLock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    // The next holder waits for this one to settle, whatever its outcome.
    this.tail = result.catch(() => undefined);
    return result;
  }
}
