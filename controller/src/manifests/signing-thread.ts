import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * Ed25519 signing on a thread of its own, called synchronously: the caller hands over the
 * messages, does other work of the same transaction while they are signed (the wave's database
 * writes), then waits for the signatures. Node's own Ed25519 (node:crypto) does the signing;
 * the worker only runs it elsewhere.
 *
 * The worker is plain JavaScript evaluated from this string: it needs no loader (tsx, vitest) and
 * no file next to the compiled build. It writes each 64-byte signature into shared memory and
 * flips a flag the caller waits on with Atomics.wait.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { sign } = require('node:crypto');
const key = workerData.key;
parentPort.on('message', ({ messages, signatures, state }) => {
  const flag = new Int32Array(state);
  const out = new Uint8Array(signatures);
  try {
    for (let i = 0; i < messages.length; i++) out.set(sign(null, messages[i], key), i * 64);
    Atomics.store(flag, 0, ${1});
  } catch {
    Atomics.store(flag, 0, ${2});
  }
  Atomics.notify(flag, 0);
});
`;

const SIGNATURE_BYTES = 64;
const PENDING = 0;
const DONE = 1;

/** How long a caller waits for the thread before it signs on its own (a wedged worker must not wedge the controller). */
const WAIT_MS = 10_000;

export class SigningThread {
  private worker: Worker | null = null;
  private online = false;
  private closed = false;

  constructor(private readonly key: KeyObject) {}

  /**
   * Signs `messages` on the thread and runs `alongside` here meanwhile. Returns null when the
   * thread is not (yet) running or failed: the caller then signs them itself. A fresh thread
   * starts on the first call and serves from the next one (its start-up takes tens of ms).
   */
  async sign(messages: readonly Uint8Array[], alongside: () => Promise<void>): Promise<Uint8Array[] | null> {
    const worker = this.ready();
    if (!worker) return null;
    const state = new SharedArrayBuffer(4);
    const signatures = new SharedArrayBuffer(messages.length * SIGNATURE_BYTES);
    const flag = new Int32Array(state);
    worker.postMessage({ messages, signatures, state });
    await alongside();
    // Atomics.wait, not waitAsync: no other work gets onto the event loop in the middle of the
    // transaction `alongside` wrote in (code not yet on the Store writes on the same connection).
    if (Atomics.wait(flag, 0, PENDING, WAIT_MS) === 'timed-out' || Atomics.load(flag, 0) !== DONE) {
      this.discard();
      return null;
    }
    const bytes = new Uint8Array(signatures);
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
