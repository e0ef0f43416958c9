import type Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../../shared/src/logger.js';

/** Int32 slots of the shared state: commits counted by the store, and whether the thread is to stop. */
const COMMITS = 0;
const STOP = 1;

/**
 * SQLite's WAL checkpoints on a thread of their own. With its default wal_autocheckpoint, the
 * COMMIT that takes the WAL past 1,000 pages copies them into the database file and fsyncs it
 * right there, and better-sqlite3 is synchronous: that is the event loop's time (about a
 * hundred ms of a 10,000-host wave). So the writer leaves checkpoints to this thread, which runs
 * them on its own connection to the file while the event loop goes on.
 *
 * When: the store counts each commit in shared memory and the thread sleeps on that count, so an
 * idle controller costs nothing (no polling timer) and a commit costs an atomic add (watching the
 * -wal file instead would mean polling it, or a wake-up per write). After a commit the thread runs a PASSIVE checkpoint, which never blocks the writer
 * or readers, then pauses `pauseMs` so a burst of commits is copied in a few passes (one fsync
 * each) rather than one per commit. A pass that could not copy everything (a reader still on an
 * older snapshot, or the writer committed meanwhile) is tried again after the pause.
 *
 * Bounded: SQLite starts the WAL over from its beginning when a write transaction begins on a
 * fully copied WAL, so between bursts it stays small by itself. Back-to-back transactions (a
 * wave's batches, a stream of reports) never leave it that moment, and only a checkpoint by the
 * writer itself, between its commit and its next transaction, makes one without stopping writes
 * (a RESTART from here would hold the write lock while it waits for readers). So the writer keeps
 * SQLite's own autocheckpoint, at `writerBackstopPages` instead of 1,000: past that it copies, on
 * the event loop, only what this thread has not copied yet, and the WAL starts over. The bound is
 * set above what a 10,000-host wave writes (~15,000 pages of 4 KiB), so such a wave never pays it.
 * After a burst, when nothing was committed for `idleMs` and the -wal file is larger than
 * `keepBytes`, a TRUNCATE gives the disk space back (a busy one is tried again after the next
 * quiet spell; it never waits for a lock).
 *
 * Started lazily, once the -wal file reaches `startWalBytes`: a store opened for a moment (a
 * `shoal` command, a test) never pays for a thread (~9 MB of memory, tens of ms to start), and
 * until it runs the writer checkpoints as SQLite does by default.
 *
 * The thread is plain JavaScript evaluated from this string (no loader, no file beside the
 * compiled build; as manifests/signing-thread.ts). better-sqlite3 is required by the path
 * resolved here: an evaluated worker resolves modules from the working directory.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.driver);
const { file, limits } = workerData;
const state = new Int32Array(workerData.state);
const db = new Database(file, { fileMustExist: true });
// Never waits for a lock: a busy pass is simply tried again.
db.pragma('busy_timeout = 0');
// Checkpoints sync the WAL before copying and the database after, as the writer's would.
db.pragma('synchronous = NORMAL');
parentPort.postMessage('ready');
const checkpoint = (mode) => db.pragma('wal_checkpoint(' + mode + ')')[0];
const walBytes = () => { try { return statSync(file + '-wal').size; } catch { return 0; } };
let seen = -1;
let behind = false;
let idle = false;
while (Atomics.load(state, ${STOP}) === 0) {
  const commits = Atomics.load(state, ${COMMITS});
  if (commits !== seen || behind) {
    seen = commits;
    idle = false;
    const pass = checkpoint('PASSIVE');
    behind = pass.busy !== 0 || pass.checkpointed < pass.log;
    Atomics.wait(state, ${STOP}, 0, limits.pauseMs);
  } else if (!idle) {
    if (Atomics.wait(state, ${COMMITS}, seen, limits.idleMs) === 'timed-out') {
      idle = walBytes() <= limits.keepBytes || checkpoint('TRUNCATE').busy === 0;
    }
  } else {
    Atomics.wait(state, ${COMMITS}, seen);
  }
}
db.close();
`;

export interface CheckpointLimits {
  /** The thread starts once the -wal file is this large (0: at once). */
  startWalBytes: number;
  /** Between passes while commits keep coming. */
  pauseMs: number;
  /** The writer's own autocheckpoint while the thread runs: what bounds the WAL under writes that never pause. */
  writerBackstopPages: number;
  /** Quiet for this long, a -wal file larger than keepBytes is truncated. */
  idleMs: number;
  keepBytes: number;
}

export const DEFAULT_LIMITS: CheckpointLimits = {
  startWalBytes: 1024 * 1024,
  pauseMs: 50,
  // 128 MiB of 4 KiB pages.
  writerBackstopPages: 32_768,
  idleMs: 1000,
  keepBytes: 16 * 1024 * 1024,
};

/** SQLite's own default, what the writer goes back to when the thread is gone. */
const WRITER_AUTOCHECKPOINT_PAGES = 1000;
/** How long close() lets a pass in progress finish before the thread is terminated. */
const STOP_WAIT_MS = 10_000;

export interface CheckpointerOptions {
  logger: Logger;
  limits?: Partial<CheckpointLimits>;
  /** The better-sqlite3 module the thread loads; the one this process uses unless told (tests). */
  driver?: string;
}

type Phase = 'waiting' | 'starting' | 'running' | 'failed' | 'closed';

export class WalCheckpointer {
  private readonly state = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
  private readonly limits: CheckpointLimits;
  private readonly walFile: string;
  private worker: Worker | null = null;
  private phase: Phase = 'waiting';

  /**
   * Will take checkpointing over from `writer` (an open WAL connection to a file). Until the
   * thread runs, and if it cannot start or dies, the writer checkpoints on commit as SQLite does
   * by default.
   */
  constructor(private readonly writer: Database.Database, private readonly options: CheckpointerOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.walFile = `${writer.name}-wal`;
    writer.pragma(`wal_autocheckpoint = ${WRITER_AUTOCHECKPOINT_PAGES}`);
    if (this.limits.startWalBytes === 0) this.start();
  }

  /** After each commit of the writer: cheap (an atomic add, and a wake-up if the thread sleeps). */
  committed(): void {
    if (this.phase === 'waiting') {
      if ((statSync(this.walFile, { throwIfNoEntry: false })?.size ?? 0) >= this.limits.startWalBytes) this.start();
    } else if (this.phase === 'starting' || this.phase === 'running') {
      Atomics.add(this.state, COMMITS, 1);
      Atomics.notify(this.state, COMMITS);
    }
  }

  /** Whether the thread does the checkpoints now (the writer only past its backstop). */
  get active(): boolean {
    return this.phase === 'running';
  }

  /** The thread, once started and while it runs (tests end it to see the writer take over). */
  get thread(): Worker | null {
    return this.worker;
  }

  /** Stops the thread once its pass in progress is done; the caller then makes the last checkpoint. */
  async close(): Promise<void> {
    this.phase = 'closed';
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    Atomics.store(this.state, STOP, 1);
    Atomics.notify(this.state, STOP);
    Atomics.notify(this.state, COMMITS);
    const timer = setTimeout(() => void worker.terminate(), STOP_WAIT_MS);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private start(): void {
    this.phase = 'starting';
    const driver = this.options.driver ?? createRequire(import.meta.url).resolve('better-sqlite3');
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { driver, file: this.writer.name, state: this.state.buffer, limits: this.limits },
        execArgv: [],
        stdout: true,
        stderr: true,
        // It holds a handful of objects: a small heap keeps its memory small.
        resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
      });
    } catch (error) {
      this.fallBack(error);
      return;
    }
    // Never what keeps the process alive: everything it would copy is safe in the WAL.
    worker.unref();
    worker.once('message', () => {
      if (this.phase !== 'starting') return;
      // The thread has the file open: the writer stops checkpointing at SQLite's 1,000 pages.
      this.writer.pragma(`wal_autocheckpoint = ${this.limits.writerBackstopPages}`);
      this.phase = 'running';
    });
    worker.once('error', (error) => this.fallBack(error));
    worker.once('exit', (code) => {
      if (this.worker === worker) this.fallBack(new Error(`the checkpoint thread exited with code ${code}`));
    });
    this.worker = worker;
  }

  private fallBack(error: unknown): void {
    if (this.phase === 'closed' || this.phase === 'failed') return;
    this.phase = 'failed';
    this.worker = null;
    if (this.writer.open) this.writer.pragma(`wal_autocheckpoint = ${WRITER_AUTOCHECKPOINT_PAGES}`);
    this.options.logger.error({ err: error }, 'the WAL checkpoint thread stopped: the writer checkpoints on commit again');
  }
}
