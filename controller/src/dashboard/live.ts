import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Logger } from '../../../shared/src/logger.js';
import { runBackground } from '../background.js';
import type { Store } from '../db/store.js';
import { wakeSignal } from '../../../shared/src/wake-signal.js';
import type { ManifestBus } from '../manifests/bus.js';
import type { RolloutEngine } from '../rollouts/engine.js';
import { diffLive, liveDigest, type LiveState } from './live-state.js';
import { newestEventCursor, readEvents, type EventCursor } from '../events-cursor.js';

/**
 * Tells live pages that something may have changed. Every report, manifest, connection and rollout
 * step appends an event, so one indexed read of the events above a cursor a second covers them all
 * without hooks into the report path (an event committed after a higher id was seen counts too:
 * events-cursor.ts); rollout changes and manifest publications wake listeners at once. Polls only
 * while someone listens.
 */
export class ChangeFeed {
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | null = null;
  private stopHooks: Array<() => void> = [];
  /** Where the feed is in the audit log; null until the first check after start has read it. */
  private cursor: EventCursor | null = null;
  /** A check failed: what changed meanwhile is unknown, so the next check that reads the database tells the listeners. */
  private unknown = false;

  constructor(
    private readonly store: Store,
    private readonly engine: RolloutEngine,
    private readonly bus: ManifestBus,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {}

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  private start(): void {
    this.cursor = null;
    this.unknown = false;
    runBackground(this.logger, 'dashboard live feed', () => this.check());
    this.timer = setInterval(() => runBackground(this.logger, 'dashboard live feed', () => this.check()), this.pollMs);
    this.timer.unref();
    this.stopHooks = [this.engine.onChange(() => this.notify()), this.bus.onPublish(() => this.notify())];
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const stop of this.stopHooks) stop();
    this.stopHooks = [];
  }

  private async check(): Promise<void> {
    let changed: boolean;
    let cursor: EventCursor;
    try {
      if (this.cursor === null) {
        cursor = await newestEventCursor(this.store);
        changed = false;
      } else {
        // Ids only: the rows themselves are the pages' business.
        const read = await readEvents(this.store, this.cursor, { batch: 1, now: Date.now(), rows: async () => [] });
        cursor = read.cursor;
        changed = read.arrived > 0;
      }
    } catch (error) {
      this.unknown = true;
      throw error;
    }
    // Stopped meanwhile: nobody listens.
    if (this.timer === null) return;
    this.cursor = cursor;
    if (changed || this.unknown) this.notify();
    this.unknown = false;
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }
}

export interface LiveOptions {
  /** Re-render at least this often, so connection states and bake timers stay true without any event; unchanged renders send nothing. */
  refreshMs: number;
  /** A comment line this often while nothing changes, so proxies keep an idle stream open. */
  heartbeatMs: number;
}

/** The stream's opening message when the client has already what `render` returns (see liveUpdates). */
export const HAVE_PARAM = 'have';

/**
 * One stream of `update` events, each a LiveMessage (JSON) of only what changed since the last one:
 * fragments replaced whole, and rows of keyed lists (the fleet table) replaced, added, removed or
 * reordered. `render` returns null when the stream should end (session closed, object gone).
 * `have` is the digest of the state the page was rendered with (liveDigest): when the first render
 * matches it, nothing is sent until something changes, so opening a page costs its HTML alone.
 */
export function liveUpdates(
  c: Context,
  feed: ChangeFeed,
  options: LiveOptions,
  render: () => LiveState | null | Promise<LiveState | null>,
  have: string | null = null,
): Response {
  c.header('cache-control', 'no-store');
  // Tells nginx-like proxies not to buffer the stream.
  c.header('x-accel-buffering', 'no');
  return streamSSE(c, async (stream) => {
    const signal = wakeSignal();
    const unsubscribe = feed.subscribe(signal.wake);
    stream.onAbort(signal.wake);
    let last: LiveState | null = null;
    let lastWrite = Date.now();
    try {
      while (!stream.aborted) {
        const state = await render();
        if (state === null) break;
        const message = last === null && have !== null && liveDigest(state) === have ? null : diffLive(last, state);
        last = state;
        if (message !== null) {
          await stream.writeSSE({ event: 'update', data: JSON.stringify(message) });
          lastWrite = Date.now();
        } else if (Date.now() - lastWrite >= options.heartbeatMs) {
          await stream.write(': keep-alive\n\n');
          lastWrite = Date.now();
        }
        await signal.sleep(Math.min(options.refreshMs, options.heartbeatMs));
      }
    } finally {
      unsubscribe();
    }
  });
}
