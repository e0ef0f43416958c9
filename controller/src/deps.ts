import { DEFAULT_REBOOT_LOCK, type RebootLockOptions } from './hosts/reboot-grants.js';
import { silentLogger, type Logger } from '../../shared/src/logger.js';
import { controllerAudience } from '../../shared/src/protocol.js';
import { DEFAULT_ADMISSION, type AdmissionLimits } from './auth/admission.js';
import { CHALLENGE_TTL_MS, ChallengeStore } from './auth/challenges.js';
import { BinaryCacheReader, type ReaderOptions } from './cache/reader.js';
import { SessionStore } from './auth/sessions.js';
import { systemClock, type Clock } from './clock.js';
import type { Store } from './db/store.js';
import { Presence } from './hosts/presence.js';
import { ManifestBus } from './manifests/bus.js';
import { ControllerMetrics } from './metrics/controller-metrics.js';
import type { ManifestSigner } from './manifests/signer.js';
import type { ReleaseTrust } from './manifests/statements.js';
import { RolloutEngine } from './rollouts/engine.js';
import { DENY_PRIVATE, DestinationGuard, type DestinationPolicy } from './webhooks/destination.js';
import { pendingDeliveries } from './webhooks/endpoints.js';

export const DEFAULT_MANIFEST_TTL_MS = 24 * 3600_000;
export const DEFAULT_POLL_INTERVAL_MS = 30_000;

/** Everything the HTTP app, the websocket hub and the renewal timer share. */
export interface ControllerDeps {
  /** The database (SQLite or PostgreSQL, docs/high-availability.md). */
  store: Store;
  /** The controller key: signs assignments. */
  signer: ManifestSigner;
  /** Which release statements authorise a system (and, in single-key mode, the key that makes them). */
  releaseTrust: ReleaseTrust;
  clock: Clock;
  logger: Logger;
  bus: ManifestBus;
  challenges: ChallengeStore;
  sessions: SessionStore;
  presence: Presence;
  manifestTtlMs: number;
  rollouts: RolloutEngine;
  metrics: ControllerMetrics;
  /** null: /metrics is open. */
  metricsToken: string | null;
  /** The origin host signatures must name (from publicUrl); null: the origin each request arrived at. */
  audience: string | null;
  /** Reads the configured binary caches (closure diffs, the rollout preflight); `configured` is false when there are none. */
  cache: BinaryCacheReader;
  /** Where webhooks may deliver (config webhooks.*): checked when one is created and at every attempt. */
  webhookDestinations: DestinationGuard;
  /** When these deps were made (the process started): desired states issued since postdate any restore. */
  startedAt: number;
  /** The fleet reboot lock (config reboots.*). */
  rebootLock: RebootLockOptions;
}

export interface DepsOptions {
  store: Store;
  signer: ManifestSigner;
  releaseTrust: ReleaseTrust;
  /** The controller's public URL, when configured: host signatures must name its origin (else the request's). */
  publicUrl?: string | null;
  clock?: Clock;
  logger?: Logger;
  manifestTtlMs?: number;
  /** The agents' poll interval: a host that polled within three of these counts as connected by polling. */
  pollIntervalMs?: number;
  metricsToken?: string | null;
  processMetrics?: boolean;
  /** Binary caches to read; absent: none (no closure diffs, no preflight). */
  cache?: Omit<ReaderOptions, 'logger'>;
  /** Default: loopback, link-local and private ranges refused. */
  webhookDestinations?: DestinationPolicy;
  /** Caps on pending challenges (total and per source address). */
  pendingChallenges?: AdmissionLimits;
  rebootLock?: RebootLockOptions;
}

export function createDeps(options: DepsOptions): ControllerDeps {
  const clock = options.clock ?? systemClock;
  const shared = {
    store: options.store,
    signer: options.signer,
    releaseTrust: options.releaseTrust,
    clock,
    logger: options.logger ?? silentLogger(),
    bus: new ManifestBus(),
    presence: new Presence(options.store, clock, options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, options.logger?.child({ component: 'presence' })),
    manifestTtlMs: options.manifestTtlMs ?? DEFAULT_MANIFEST_TTL_MS,
  };
  const rollouts = new RolloutEngine(shared);
  return {
    ...shared,
    challenges: new ChallengeStore(options.store, clock, CHALLENGE_TTL_MS, options.pendingChallenges ?? DEFAULT_ADMISSION.pendingChallenges),
    sessions: new SessionStore(options.store, clock, shared.logger.child({ component: 'sessions' })),
    rollouts,
    metrics: new ControllerMetrics({
      store: options.store,
      presence: shared.presence,
      pendingWebhookDeliveries: () => pendingDeliveries(options.store),
      rolloutEngineTicks: () => rollouts.ticks,
      processMetrics: options.processMetrics ?? false,
    }),
    metricsToken: options.metricsToken ?? null,
    audience: options.publicUrl ? controllerAudience(options.publicUrl) : null,
    cache: new BinaryCacheReader({
      ...(options.cache ?? { caches: [], concurrency: 1, timeoutMs: 10_000 }),
      logger: shared.logger.child({ component: 'binary-cache' }),
    }),
    webhookDestinations: new DestinationGuard(options.webhookDestinations ?? DENY_PRIVATE),
    startedAt: clock.now(),
    rebootLock: options.rebootLock ?? DEFAULT_REBOOT_LOCK,
  };
}
