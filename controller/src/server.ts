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
import { startRenewal } from './manifests/renew.js';
import { EngineDuties, type Duty } from './replicas/engine-duties.js';
import { startManifestRelay } from './replicas/manifest-relay.js';
import { ENGINE_WAKE_CHANNEL } from './rollouts/engine.js';
import { runBackground } from './background.js';
import type { ManifestSigner } from './manifests/signer.js';
import type { ReleaseTrust } from './manifests/statements.js';
import type { ReaderOptions } from './cache/reader.js';
import { EventLog } from './event-log.js';
import { WebhookDispatcher, type WebhookOptions } from './webhooks/dispatcher.js';
import { AgentHub, type HubOptions } from './ws/hub.js';
import type { AdmissionLimits } from './auth/admission.js';
import { startAuthSweep } from './auth/sweep.js';
import { DEFAULT_RETENTION, startPruning, type RetentionOptions } from './retention/prune.js';
import type { DestinationPolicy } from './webhooks/destination.js';
import type { RebootLockOptions } from './hosts/reboot-grants.js';

export interface ControllerOptions {
  /** The SQLite file, or a postgres:// URL (with its password) shared by the controller's replicas. */
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
  /** The work only one replica does at a time (engine lease): whether this one does it now. */
  engine: EngineDuties;
  /** The SQLite connection under `store`, for tests that inspect the file (throws on PostgreSQL). */
  readonly database: OpenDatabase;
  hub: AgentHub;
  server: Server;
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
  const stopRelay = await startManifestRelay({
    store,
    bus: deps.bus,
    serves: (name) => hub.isConnected(name) || deps.bus.hasWaiter(name),
    servedHosts: () => [...new Set([...hub.connectedHosts(), ...deps.bus.waitingHosts()])],
    logger: deps.logger,
  });
  const engine = new EngineDuties(store.engineLease(), engineDuties(deps, options), deps.logger, (held) => {
    deps.rollouts.leading = held;
    deps.metrics.engineLeaseHeld(held);
  });
  // Resumes every rollout where the database says it stands (after a restart, at once) when this replica holds the lease.
  await engine.start();
  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      const engineStopped = engine.close();
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
      // A renewal pass or webhook attempt in flight finishes its transaction before the database goes away.
      await engineStopped;
      await stopRelay();
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
    engine,
    // Looked up when asked for: a controller on PostgreSQL has no SQLite file, and nothing of its own needs one.
    get database() {
      return sqliteWriter(store);
    },
    hub,
    server,
    close,
  };
}

/** What the engine lease holder runs, in the order it starts them. */
function engineDuties(deps: ControllerDeps, options: ControllerOptions): Duty[] {
  return [
    {
      name: 'rollouts',
      async start() {
        await deps.rollouts.tickAll();
        deps.rollouts.startTimer(options.rolloutTickMs ?? 1000);
        const unsubscribe = await deps.store.notifications.subscribe(ENGINE_WAKE_CHANNEL, (id) =>
          runBackground(deps.logger, 'rollout tick after another replica\'s report', () => deps.rollouts.tick(id, { deadlines: false }), { rolloutId: id }),
        );
        return async () => {
          deps.rollouts.stopTimer();
          await unsubscribe();
        };
      },
    },
    {
      name: 'renewal',
      async start() {
        const renewal = startRenewal({ ...deps, checkIntervalMs: options.renewCheckMs ?? 60_000 });
        void renewal.runNow();
        return () => renewal.stop();
      },
    },
    {
      name: 'webhooks',
      async start() {
        const webhooks = new WebhookDispatcher({ ...deps, onAttempt: (result) => deps.metrics.webhookAttempt(result) }, options.webhooks);
        const unsubscribe = deps.rollouts.onChange(() => webhooks.wake());
        webhooks.start();
        return async () => {
          unsubscribe();
          await webhooks.stop();
        };
      },
    },
    {
      name: 'retention',
      async start() {
        const pruning = startPruning(deps, { ...DEFAULT_RETENTION, ...options.retention });
        const sweep = startAuthSweep(deps);
        return async () => {
          sweep.stop();
          await pruning.stop();
        };
      },
    },
    {
      name: 'event log',
      async start() {
        const eventLog = new EventLog(deps.store, deps.logger);
        eventLog.start(1000);
        return () => eventLog.stop();
      },
    },
  ];
}
