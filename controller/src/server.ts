import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger, type Logger } from '../../shared/src/logger.js';
import type { Clock } from './clock.js';
import type { OpenDatabase } from './db/open.js';
import { sqliteWriter } from './db/sqlite-store.js';
import { openStore, type Store } from './db/store.js';
import type { DashboardOptions } from './dashboard/routes.js';
import { createDeps, type ControllerDeps } from './deps.js';
import { createApp, DEFAULT_LIMITS, type AppLimits } from './app.js';
import { startRenewal, type RenewalTimer } from './manifests/renew.js';
import type { ManifestSigner } from './manifests/signer.js';
import type { ReleaseTrust } from './manifests/statements.js';
import type { ReaderOptions } from './cache/reader.js';
import { EventLog } from './event-log.js';
import { WebhookDispatcher, type WebhookOptions } from './webhooks/dispatcher.js';
import { AgentHub, type HubOptions } from './ws/hub.js';
import type { AdmissionLimits } from './auth/admission.js';
import { startAuthSweep } from './auth/sweep.js';
import { DEFAULT_RETENTION, startPruning, type Pruning, type RetentionOptions } from './retention/prune.js';
import type { DestinationPolicy } from './webhooks/destination.js';
import type { RebootLockOptions } from './hosts/reboot-grants.js';

export interface ControllerOptions {
  dbFile: string;
  /** The fleet reboot lock; default DEFAULT_REBOOT_LOCK. */
  rebootLock?: RebootLockOptions;
  /** The controller key: signs assignments. */
  signer: ManifestSigner;
  releaseTrust: ReleaseTrust;
  /** Where agents reach this controller (config publicUrl); host signatures are bound to its origin. null: the origin each request arrived at. */
  publicUrl?: string | null;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port (see handle.port). */
  port: number;
  clock?: Clock;
  logger?: Logger;
  manifestTtlMs?: number;
  renewCheckMs?: number;
  /** How often rollouts are checked for deadlines and bake timers; reports advance them at once regardless. */
  rolloutTickMs?: number;
  pollIntervalMs?: number;
  hub?: HubOptions;
  limits?: AppLimits;
  /** Bearer token /metrics requires; null or absent: open. */
  metricsToken?: string | null;
  /** Node process metrics on /metrics (the serve command turns them on). */
  processMetrics?: boolean;
  webhooks?: WebhookOptions;
  /** Where webhooks may deliver; default: loopback, link-local and private ranges refused. */
  webhookDestinations?: DestinationPolicy;
  /** Caps on pending challenges (total and per source address); unauthenticated websockets are hub.unauthenticated. */
  pendingChallenges?: AdmissionLimits;
  /** Pruning of old reports, events and deliveries; absent: DEFAULT_RETENTION. */
  retention?: RetentionOptions;
  dashboard?: DashboardOptions;
  /** Binary caches read for closure diffs and the rollout preflight. */
  cache?: Omit<ReaderOptions, 'logger'>;
}

export interface ControllerHandle {
  url: string;
  port: number;
  deps: ControllerDeps;
  store: Store;
  /** The SQLite connection under `store`, for tests that inspect the file (throws on PostgreSQL). */
  readonly database: OpenDatabase;
  hub: AgentHub;
  renewal: RenewalTimer;
  server: Server;
  webhooks: WebhookDispatcher;
  pruning: Pruning;
  /** Stops accepting, releases long-polls, closes websockets (4503), then the database. */
  close(): Promise<void>;
}

/** Starts a controller on a real socket; for the process entry point, the fleet lab and tests alike. */
export async function startController(options: ControllerOptions): Promise<ControllerHandle> {
  const logger = options.logger ?? silentLogger();
  const store = await openStore({ database: options.dbFile, logger });
  const deps = createDeps({
    store,
    signer: options.signer,
    releaseTrust: options.releaseTrust,
    publicUrl: options.publicUrl ?? null,
    logger,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.manifestTtlMs ? { manifestTtlMs: options.manifestTtlMs } : {}),
    ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
    metricsToken: options.metricsToken ?? null,
    processMetrics: options.processMetrics ?? false,
    ...(options.cache ? { cache: options.cache } : {}),
    ...(options.webhookDestinations ? { webhookDestinations: options.webhookDestinations } : {}),
    ...(options.pendingChallenges ? { pendingChallenges: options.pendingChallenges } : {}),
    ...(options.rebootLock ? { rebootLock: options.rebootLock } : {}),
  });
  const app = createApp(deps, options.limits ?? DEFAULT_LIMITS, options.dashboard);
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  const hub = new AgentHub(deps, options.hub);
  hub.attach(server);
  const renewal = startRenewal({ ...deps, checkIntervalMs: options.renewCheckMs ?? 60_000 });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  void renewal.runNow();
  // Resume every rollout where the database says it stands (after a restart, at once).
  await deps.rollouts.tickAll();
  deps.rollouts.startTimer(options.rolloutTickMs ?? 1000);
  const webhooks = new WebhookDispatcher({ ...deps, onAttempt: (result) => deps.metrics.webhookAttempt(result) }, options.webhooks);
  deps.rollouts.onChange(() => webhooks.wake());
  webhooks.start();
  const pruning = startPruning(deps, { ...DEFAULT_RETENTION, ...options.retention });
  const authSweep = startAuthSweep(deps);
  const eventLog = new EventLog(deps.store, deps.logger);
  eventLog.start(1000);

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      const eventLogStopped = eventLog.stop();
      const renewalStopped = renewal.stop();
      deps.rollouts.stopTimer();
      const webhooksStopped = webhooks.stop();
      const pruningStopped = pruning.stop();
      authSweep.stop();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      deps.bus.releaseAll();
      await hub.close();
      // Keep-alive sockets turn idle only once their last response (e.g. a released long-poll) is out.
      const sweep = setInterval(() => server.closeIdleConnections(), 25);
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 5000);
      await closed;
      clearInterval(sweep);
      clearTimeout(force);
      // A renewal pass in flight finishes its transaction before the database goes away.
      await renewalStopped;
      await webhooksStopped;
      await pruningStopped;
      await eventLogStopped;
      // The last-seen times heard until now, written before the database goes away.
      await deps.presence.flush();
      await store.close();
      deps.signer.close();
    })();
    return closing;
  };

  return {
    url: `http://${urlHost}:${port}`,
    port,
    deps,
    store,
    // Looked up when asked for: a controller on PostgreSQL has no SQLite file, and nothing of its own needs one.
    get database() {
      return sqliteWriter(store);
    },
    hub,
    renewal,
    server,
    webhooks,
    pruning,
    close,
  };
}
