import { jitteredBackoff } from '../../shared/src/backoff.js';
import { wakeSignal } from '../../shared/src/wake-signal.js';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/src/logger.js';
import { MAX_REPORT_BATCH_BYTES, MAX_REPORTS_PER_BATCH, Report, type ReportAck } from '../../shared/src/protocol.js';
import type { Call } from './client.js';
import { describeCallError } from './client.js';
import { syncDir, writeFileAtomic } from './durable-file.js';

/**
 * Reports live on disk until the controller acknowledges them: one fsynced file per report,
 * named by its sequence number, so that a report made while the controller is unreachable
 * (or just before the agent is killed) is delivered later, in order, exactly once as far as
 * the controller is concerned ((host, seq) is unique there).
 */

const FILE = /^(\d{12})\.json$/;
const NEXT_SEQ_FILE = 'next-seq';

export type NewReport = Omit<Report, 'seq'>;

function fileName(seq: number): string {
  return `${String(seq).padStart(12, '0')}.json`;
}

export class Outbox {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly waiters = new Map<number, Array<() => void>>();

  private constructor(
    readonly dir: string,
    private nextSeq: number,
    private readonly pendingReports: Map<number, Report>,
  ) {}

  static async open(stateDir: string, options: { logger?: Logger } = {}): Promise<Outbox> {
    const dir = join(stateDir, 'outbox');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const pending = new Map<number, Report>();
    for (const name of await readdir(dir)) {
      const match = FILE.exec(name);
      if (!match) continue;
      const text = await readFile(join(dir, name), 'utf8');
      let report: Report;
      try {
        report = Report.parse(JSON.parse(text));
        if (report.seq !== Number(match[1])) throw new Error(`holds seq ${report.seq}`);
      } catch (error) {
        // Files are fsynced before they count, so a torn one is most likely a report that was
        // never made; but it may also be damage worth a look, so it is kept (under a name
        // open() ignores) rather than deleted, and said out loud.
        const aside = `${name}.unreadable-${Date.now()}`;
        await rename(join(dir, name), join(dir, aside));
        options.logger?.warn({ file: join(dir, name), movedTo: join(dir, aside), bytes: text.length, error: (error as Error).message }, 'outbox file does not parse; moved it aside');
        continue;
      }
      pending.set(report.seq, report);
    }
    let persisted = 1;
    try {
      persisted = Number((await readFile(join(dir, NEXT_SEQ_FILE), 'utf8')).trim()) || 1;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const highestPending = Math.max(0, ...pending.keys());
    return new Outbox(dir, Math.max(persisted, highestPending + 1), pending);
  }

  /**
   * Numbers the report, makes it durable, and only then returns it. A failed write (a full
   * disk) removes what it left, so the same number is free for the next attempt: the outbox
   * never wedges on a half-written file of its own.
   */
  add(report: NewReport): Promise<Report> {
    const run = this.queue.then(async () => {
      const numbered = Report.parse({ ...report, seq: this.nextSeq });
      const file = join(this.dir, fileName(numbered.seq));
      const handle = await open(file, 'wx', 0o600);
      try {
        try {
          await handle.writeFile(`${JSON.stringify(numbered)}\n`);
          await handle.sync();
        } finally {
          await handle.close();
        }
        // The report file first: if we die before next-seq is written, open() derives it from the file.
        await writeFileAtomic(join(this.dir, NEXT_SEQ_FILE), `${numbered.seq + 1}\n`);
      } catch (error) {
        await unlink(file).catch(() => {});
        throw error;
      }
      this.nextSeq = numbered.seq + 1;
      this.pendingReports.set(numbered.seq, numbered);
      return numbered;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Oldest first, at most `limit` reports and `maxBytes` of JSON (always at least one report). */
  pending(limit = MAX_REPORTS_PER_BATCH, maxBytes = MAX_REPORT_BATCH_BYTES): Report[] {
    const batch: Report[] = [];
    let bytes = 0;
    for (const report of [...this.pendingReports.values()].sort((a, b) => a.seq - b.seq)) {
      const size = Buffer.byteLength(JSON.stringify(report));
      if (batch.length >= limit || (batch.length > 0 && bytes + size > maxBytes)) break;
      batch.push(report);
      bytes += size;
    }
    return batch;
  }

  get size(): number {
    return this.pendingReports.size;
  }

  /** Removes exactly the acknowledged reports; anything else stays for the next attempt. */
  async ack(seqs: readonly number[]): Promise<void> {
    const removed: number[] = [];
    for (const seq of seqs) {
      if (!this.pendingReports.has(seq)) continue;
      await unlink(join(this.dir, fileName(seq))).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      this.pendingReports.delete(seq);
      removed.push(seq);
    }
    if (removed.length > 0) await syncDir(this.dir);
    for (const seq of removed) {
      for (const wake of this.waiters.get(seq) ?? []) wake();
      this.waiters.delete(seq);
    }
  }

  /** Resolves true once the report with this seq was acknowledged, false after timeoutMs. */
  waitForAck(seq: number, timeoutMs: number): Promise<boolean> {
    if (!this.pendingReports.has(seq)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const list = this.waiters.get(seq);
        if (list) this.waiters.set(seq, list.filter((w) => w !== wake));
        resolve(false);
      }, timeoutMs);
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.set(seq, [...(this.waiters.get(seq) ?? []), wake]);
    });
  }
}

export interface SenderOptions {
  outbox: Outbox;
  send: (reports: Report[]) => Promise<Call<ReportAck>>;
  logger: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
}

/**
 * Drains the outbox in order, in batches, with backoff while the controller is unreachable.
 * `kick()` after adding a report; `flush()` on shutdown.
 */
export class OutboxSender {
  private running = false;
  private kicked = false;
  private stopped = false;
  /** Wakes the retry loop's backoff sleep when a report is added or the sender stops. */
  private readonly signal = wakeSignal();
  private idle: Promise<void> = Promise.resolve();
  private failures = 0;

  constructor(private readonly options: SenderOptions) {}

  kick(): void {
    this.kicked = true;
    if (this.signal.sleeping) {
      this.signal.wake();
      return;
    }
    if (!this.running && !this.stopped) this.idle = this.loop();
  }

  /** Stops retrying; returns once the current attempt (if any) ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.signal.wake();
    await this.idle;
  }

  /** Stops the retry loop and tries to deliver what is pending within timeoutMs; true when the outbox is empty. */
  async flush(timeoutMs: number): Promise<boolean> {
    const attempt = (async () => {
      await this.stop();
      while (this.options.outbox.size > 0 && (await this.sendOnce()));
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([attempt, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    return this.options.outbox.size === 0;
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (!this.stopped) {
        this.kicked = false;
        if (this.options.outbox.size === 0) break;
        if (await this.sendOnce()) {
          this.failures = 0;
          continue;
        }
        this.failures += 1;
        const delay = jitteredBackoff(this.failures - 1, {
          baseMs: this.options.initialBackoffMs ?? 500,
          maxMs: this.options.maxBackoffMs ?? 30_000,
          random: this.options.random ?? Math.random,
        });
        await this.signal.sleep(delay);
      }
    } finally {
      this.running = false;
    }
    // A kick that arrived after the last emptiness check must not be lost.
    if (this.kicked && !this.stopped && this.options.outbox.size > 0) this.idle = this.loop();
  }

  private async sendOnce(): Promise<boolean> {
    const batch = this.options.outbox.pending();
    if (batch.length === 0) return true;
    const result = await this.options.send(batch);
    if (!result.ok) {
      this.options.logger.warn({ pending: this.options.outbox.size, error: describeCallError(result.error) }, 'reports not delivered, will retry');
      return false;
    }
    await this.options.outbox.ack(result.value.ackedSeqs);
    if (result.value.ackedSeqs.length === 0) {
      this.options.logger.warn({ sent: batch.map((r) => r.seq) }, 'controller acknowledged none of the reports sent');
      return false;
    }
    return true;
  }
}
