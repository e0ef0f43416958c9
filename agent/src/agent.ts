import { createHash } from 'node:crypto';
import type { Ed25519 } from '../../shared/src/ed25519.js';
import type { NamedPublicKey } from '../../shared/src/keys.js';
import type { Logger } from '../../shared/src/logger.js';
import type { Action } from '../../shared/src/protocol.js';
import { Activator } from './activation.js';
import { describeCallError, type ControllerClient } from './client.js';
import type { Reporter } from './reporter.js';
import type { LastResult, StateStore } from './state.js';
import { isNoSpace, type StateDirSpace } from './storage.js';
import { verifyManifest } from './verify.js';

/**
 * The one sync code path. The websocket and the poller both hand envelopes to `sync`; it
 * verifies them and runs at most one activation at a time. A manifest that arrives during an
 * activation waits (only the newest waits) and is handled afterwards.
 */

export interface SyncDeps {
  host: string;
  trustedControllerKeys: readonly NamedPublicKey[];
  trustedReleaseKeys: readonly NamedPublicKey[];
  maxClockSkewMs: number;
  maxManifestLifetimeMs: number;
  ed25519: Ed25519;
  state: StateStore;
  activator: Activator;
  report: Reporter;
  actionOverride: Action | null;
  /** Room to record an activation; without it a valid manifest is held back, not used up. */
  space?: Pick<StateDirSpace, 'check'>;
  /** Told every activation's result (after it was recorded and reported). */
  onResult?: (result: LastResult) => Promise<void>;
  clock: () => Date;
  logger: Logger;
}

export class ManifestSync {
  /** A valid manifest that could not be applied for want of room; handled again by retryHeld(). */
  private held: unknown = undefined;
  private heldReportedVersion: number | null = null;
  private busy: Promise<void> | null = null;
  private queued: unknown = undefined;
  private hasQueued = false;
  private lastRefused: string | null = null;
  private stopped = false;

  constructor(private readonly deps: SyncDeps) {}

  /** Accepts any input (it comes off the network); returns once this envelope or a newer queued one was handled. */
  sync(envelope: unknown): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.busy) {
      this.queued = envelope;
      this.hasQueued = true;
      return this.busy;
    }
    this.busy = this.drain(envelope).finally(() => {
      this.busy = null;
    });
    return this.busy;
  }

  /** Stops taking manifests; resolves when the current one (if any) is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.hasQueued = false;
    await this.busy;
  }

  get idle(): boolean {
    return this.busy === null;
  }

  /** Whether a manifest waits for room in the state directory. */
  get holding(): boolean {
    return this.held !== undefined;
  }

  /** There is room again: handle the held manifest (unless a newer one came meanwhile, which wins). */
  retryHeld(): Promise<void> {
    if (this.held === undefined) return Promise.resolve();
    const envelope = this.held;
    this.held = undefined;
    return this.sync(envelope);
  }

  private async drain(first: unknown): Promise<void> {
    let next: unknown = first;
    for (;;) {
      try {
        await this.handle(next);
      } catch (error) {
        // The one place the agent translates unexpected errors while syncing.
        this.deps.logger.error({ err: error }, 'handling a manifest failed');
      }
      if (!this.hasQueued || this.stopped) return;
      next = this.queued;
      this.hasQueued = false;
      this.queued = undefined;
    }
  }

  private async handle(envelope: unknown): Promise<void> {
    const state = this.deps.state.get();
    const verdict = verifyManifest(envelope, {
      host: this.deps.host,
      trustedControllerKeys: this.deps.trustedControllerKeys,
      trustedReleaseKeys: this.deps.trustedReleaseKeys,
      highestVersion: state.highestVersion,
      highestStorePath: state.highestStorePath,
      highestFloor: state.highestFloor,
      stateLost: state.stateLost,
      maxClockSkewMs: this.deps.maxClockSkewMs,
      maxManifestLifetimeMs: this.deps.maxManifestLifetimeMs,
      now: this.deps.clock(),
      ed25519: this.deps.ed25519,
    });
    switch (verdict.outcome) {
      case 'already-have':
        this.deps.logger.debug({ version: verdict.version }, 'manifest already handled');
        return;
      case 'refused': {
        // The controller re-sends its desired manifest on every reconnect; report a refusal once.
        const fingerprint = createHash('sha256').update(JSON.stringify(envelope) ?? 'undefined').digest('hex');
        if (fingerprint === this.lastRefused) return;
        this.lastRefused = fingerprint;
        this.deps.logger.warn({ refusal: verdict.reason, reason: verdict.message, version: verdict.version }, 'manifest refused');
        await this.deps.report({
          phase: 'refused',
          manifestVersion: verdict.version,
          storePath: verdict.storePath,
          detail: { refusal: verdict.reason, reason: verdict.message },
        });
        return;
      }
      case 'valid': {
        const action = this.deps.actionOverride ?? verdict.manifest.action;
        const { release, floor } = verdict.statement;
        this.deps.logger.info(
          { version: verdict.manifest.version, storePath: verdict.manifest.storePath, action, keyId: verdict.keyId, release, floor, releaseKeyId: verdict.statementKeyId },
          'manifest accepted',
        );
        const room = await this.deps.space?.check();
        if (room && !room.ok) return this.hold(envelope, verdict.manifest.version, verdict.manifest.storePath, room.reason);
        try {
          const result = await this.deps.activator.apply(verdict.manifest, action, floor);
          await this.deps.onResult?.(result);
        } catch (error) {
          // Recording the acceptance itself did not fit: nothing was done, so the manifest is not used up.
          if (isNoSpace(error) && this.deps.state.get().highestVersion < verdict.manifest.version) {
            return this.hold(envelope, verdict.manifest.version, verdict.manifest.storePath, `the state directory is full: ${(error as Error).message}`);
          }
          throw error;
        }
        return;
      }
    }
  }

  /** Keeps the manifest for retryHeld() and says why, once per version: a refusal that lasts only until there is room. */
  private async hold(envelope: unknown, version: number, storePath: string, reason: string): Promise<void> {
    this.held = envelope;
    if (this.heldReportedVersion === version) return;
    this.deps.logger.error({ version, storePath, reason }, 'cannot record an activation: manifest held back until the state directory has room');
    await this.deps.report({ phase: 'refused', manifestVersion: version, storePath, detail: { refusal: 'no-space', reason } });
    // Only once the report is in the outbox: a report that did not fit is tried again at the next attempt.
    this.heldReportedVersion = version;
  }
}

/**
 * Asks the controller for the desired manifest while push is not available. With `waitSeconds`
 * it long-polls: the controller holds the request until the manifest changes (or the wait ends)
 * and the poller asks again at once, so a change arrives within about a second instead of
 * within the interval. The interval is the pause after a failure, or between plain polls
 * (waitSeconds 0). An unchanged answer costs a 304 thanks to the ETag.
 */
export class Poller {
  private timer: NodeJS.Timeout | undefined;
  private etag: string | null = null;
  private running = false;
  private stopped = true;
  private lastError: string | null = null;
  private inFlight: AbortController | null = null;

  constructor(
    private readonly deps: {
      client: Pick<ControllerClient, 'getManifest'>;
      intervalMs: number;
      /** How long the controller may hold each poll; 0 polls every intervalMs instead. */
      waitSeconds: number;
      /** Polls only when this says so (websocket off, or not connected right now). */
      shouldPoll: () => boolean;
      onEnvelope: (envelope: unknown) => Promise<void>;
      /** The controller answered: reports waiting in the outbox can go now rather than after their backoff. */
      onReachable?: () => void;
      logger: Logger;
      now?: () => number;
    },
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops polling and abandons a long-poll in flight. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.inFlight?.abort();
  }

  /** Poll right away (e.g. the websocket just dropped); a long-poll in flight already waits for news. */
  now(): void {
    if (this.stopped || this.running) return;
    clearTimeout(this.timer);
    this.schedule(0);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let again = false;
    if (this.deps.shouldPoll()) {
      this.running = true;
      try {
        again = await this.pollOnce();
      } finally {
        this.running = false;
      }
    }
    if (!this.stopped) this.schedule(again ? 0 : this.deps.intervalMs);
  }

  /** One poll; true when the next may follow at once (a long-poll the controller answered as it should). */
  async pollOnce(): Promise<boolean> {
    const now = this.deps.now ?? Date.now;
    const started = now();
    this.inFlight = new AbortController();
    const result = await this.deps.client.getManifest({ etag: this.etag, waitSeconds: this.deps.waitSeconds, signal: this.inFlight.signal });
    this.inFlight = null;
    if (this.stopped) return false;
    if (!result.ok) {
      const message = describeCallError(result.error);
      // Once per distinct error, not every interval while the controller is down.
      if (message !== this.lastError) this.deps.logger.warn({ error: message }, 'polling the controller failed');
      this.lastError = message;
      return false;
    }
    if (this.lastError) this.deps.logger.info('polling the controller works again');
    this.lastError = null;
    this.deps.onReachable?.();
    const answer = result.value;
    if (answer.kind === 'manifest') {
      await this.deps.onEnvelope(answer.response.envelope);
      // Remember the ETag only once the manifest was handled, so a crash mid-way fetches it again.
      this.etag = answer.etag;
      return this.deps.waitSeconds > 0;
    }
    if (answer.kind === 'none') this.etag = null;
    // "Nothing changed" long before the wait was over: a controller that does not hold polls (or
    // one shutting down). Asking again at once would spin; wait the interval.
    return this.deps.waitSeconds > 0 && now() - started >= (this.deps.waitSeconds * 1000) / 2;
  }
}
