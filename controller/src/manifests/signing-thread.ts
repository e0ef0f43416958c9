import { sign as nodeSign, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * Ed25519 signing on a thread of its own, called synchronously: the caller hands over the
 * messages, does other work of the same transaction while they are signed (the wave's database
 * writes), then helps: both threads take the next unsigned message from one shared counter until
 * none is left, so the caller never sits idle waiting for a thread that signs slower than it
 * writes (a fifth of the event loop's time in a 10,000-host wave, bench/README.md). Node's own
 * Ed25519 (node:crypto) does the signing on both; Ed25519 is deterministic, so who signed which
 * message does not show.
 *
 * The worker is plain JavaScript evaluated from this string: it needs no loader (tsx, vitest) and
 * no file next to the compiled build. It writes each 64-byte signature into shared memory, counts
 * it in `state`, and the caller waits on that count with Atomics.wait.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { sign } = require('node:crypto');
const key = workerData.key;
parentPort.on('message', ({ messages, signatures, state }) => {
  const counters = new Int32Array(state);
  const out = new Uint8Array(signatures);
  try {
    for (let i = Atomics.add(counters, ${0}, 1); i < messages.length; i = Atomics.add(counters, ${0}, 1)) {
      out.set(sign(null, messages[i], key), i * 64);
      Atomics.add(counters, ${1}, 1);
      Atomics.notify(counters, ${1});
    }
  } catch {
    Atomics.store(counters, ${2}, 1);
    Atomics.notify(counters, ${1});
  }
});
`;

const SIGNATURE_BYTES = 64;
/** Int32 slots of the shared state: the next message to take, how many are signed, whether the worker failed. */
const NEXT = 0;
const SIGNED = 1;
const FAILED = 2;

/** How long a caller waits for the thread before it signs on its own (a wedged worker must not wedge the controller). */
const WAIT_MS = 10_000;

export class SigningThread {
  private worker: Worker | null = null;
  private online = false;
  private closed = false;

  constructor(private readonly key: KeyObject) {}

  /**
   * Signs `messages` on the thread and runs `alongside` here meanwhile, then signs what is left
   * here too. Returns null when the thread is not (yet) running or failed: the caller then signs
   * them itself. A fresh thread starts on the first call and serves from the next one (its
   * start-up takes tens of ms).
   */
  async sign(messages: readonly Uint8Array[], alongside: () => Promise<void>): Promise<Uint8Array[] | null> {
    const worker = this.ready();
    if (!worker) return null;
    const state = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
    const signatures = new SharedArrayBuffer(messages.length * SIGNATURE_BYTES);
    const counters = new Int32Array(state);
    const bytes = new Uint8Array(signatures);
    worker.postMessage({ messages, signatures, state });
    await alongside();
    for (let i = Atomics.add(counters, NEXT, 1); i < messages.length; i = Atomics.add(counters, NEXT, 1)) {
      bytes.set(nodeSign(null, messages[i]!, this.key), i * SIGNATURE_BYTES);
      Atomics.add(counters, SIGNED, 1);
    }
    // What the worker took last may still be in progress. Atomics.wait blocks the event loop only
    // for that one signature; waitAsync would let other work in for no gain.
    const deadline = performance.now() + WAIT_MS;
    for (let signed = Atomics.load(counters, SIGNED); signed < messages.length; signed = Atomics.load(counters, SIGNED)) {
      const left = deadline - performance.now();
      if (Atomics.load(counters, FAILED) !== 0 || left <= 0) {
        this.discard();
        return null;
      }
      Atomics.wait(counters, SIGNED, signed, left);
    }
    return messages.map((_, i) => bytes.slice(i * SIGNATURE_BYTES, (i + 1) * SIGNATURE_BYTES));
  }

  /** Starts the thread now, resolving once it serves (or failed to start: calls then return null). */
  started(): Promise<void> {
    if (this.online || this.closed) return Promise.resolve();
    this.ready();
    const worker = this.worker!;
    return new Promise((resolve) => {
      worker.once('online', () => resolve());
      worker.once('exit', () => resolve());
    });
  }

  /** For good: later calls sign on the caller's thread. */
  close(): void {
    this.closed = true;
    this.discard();
  }

  private ready(): Worker | null {
    if (this.closed) return null;
    if (this.worker) return this.online ? this.worker : null;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { key: this.key }, execArgv: [], stdout: true, stderr: true });
    // Never what keeps the controller alive; it holds no state worth waiting for.
    worker.unref();
    worker.once('online', () => {
      if (this.worker === worker) this.online = true;
    });
    worker.once('error', () => this.forget(worker));
    worker.once('exit', () => this.forget(worker));
    this.worker = worker;
    return null;
  }

  private forget(worker: Worker): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.online = false;
  }

  private discard(): void {
    const worker = this.worker;
    this.worker = null;
    this.online = false;
    if (worker) void worker.terminate();
  }
}
