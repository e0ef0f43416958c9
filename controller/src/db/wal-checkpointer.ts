import type Database from 'better-sqlite3';
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
 * idle controller costs nothing (no polling timer, no stat of the -wal file) and a commit costs an
 * atomic add. After a commit the thread runs a PASSIVE checkpoint, which never blocks the writer
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
 * The thread is plain JavaScript evaluated from this string (no loader, no file beside the
 * compiled build; as manifests/signing-thread.ts). better-sqlite3 is required by the path
 * resolved here: an evaluated worker resolves modules from the working directory.
 */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.driver);
const { file, limits } = workerData;
const state = new Int32Array(workerData.state);
const db = new Database(file, { fileMustExist: true });
// Never waits for a lock: a busy pass is simply tried again.
db.pragma('busy_timeout = 0');
// Checkpoints sync the WAL before copying and the database after, as the writer's would.
db.pragma('synchronous = NORMAL');
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
  /** Between passes while commits keep coming. */
  pauseMs: number;
  /** The writer's own autocheckpoint while the thread runs: what bounds the WAL under writes that never pause. */
  writerBackstopPages: number;
  /** Quiet for this long, a -wal file larger than keepBytes is truncated. */
  idleMs: number;
  keepBytes: number;
}

export const DEFAULT_LIMITS: CheckpointLimits = {
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

export class WalCheckpointer {
  private readonly state = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
  private worker: Worker | null = null;
  private stopping = false;

  /**
   * Takes checkpointing over from `writer` (an open WAL connection to a file). If the thread
   * cannot start, or dies later, the writer checkpoints on commit again as SQLite does by default.
   */
  constructor(private readonly writer: Database.Database, private readonly options: CheckpointerOptions) {
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    writer.pragma(`wal_autocheckpoint = ${limits.writerBackstopPages}`);
    const driver = options.driver ?? createRequire(import.meta.url).resolve('better-sqlite3');
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { driver, file: writer.name, state: this.state.buffer, limits },
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
    worker.once('error', (error) => this.fallBack(error));
    worker.once('exit', (code) => {
      if (this.worker === worker && !this.stopping) this.fallBack(new Error(`the checkpoint thread exited with code ${code}`));
    });
    this.worker = worker;
  }

  /** After each commit of the writer: cheap (an atomic add, and a wake-up if the thread sleeps). */
  committed(): void {
    Atomics.add(this.state, COMMITS, 1);
    Atomics.notify(this.state, COMMITS);
  }

  /** The thread, while it runs (tests end it to see the writer take over). */
  get thread(): Worker | null {
    return this.worker;
  }

  /** Stops the thread once its pass in progress is done; the caller then makes the last checkpoint. */
  async close(): Promise<void> {
    this.stopping = true;
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

  private fallBack(error: unknown): void {
    if (this.stopping) return;
    this.worker = null;
    if (this.writer.open) this.writer.pragma(`wal_autocheckpoint = ${WRITER_AUTOCHECKPOINT_PAGES}`);
    this.options.logger.error({ err: error }, 'the WAL checkpoint thread stopped: the writer checkpoints on commit again');
  }
}
