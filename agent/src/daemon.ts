import { jitteredBackoff } from '../../shared/src/backoff.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { nodeEd25519, type Ed25519 } from '../../shared/src/ed25519.js';
import { formatPublicKey, keyFingerprint } from '../../shared/src/keys.js';
import type { Logger } from '../../shared/src/logger.js';
import { Activator } from './activation.js';
import { ManifestSync, Poller } from './agent.js';
import { ControllerClient } from './client.js';
import { trustedControllerKeys, trustedReleaseKeys, type AgentConfig } from './config.js';
import { ControllerEndpoints, controllerUrlsOf } from './endpoints.js';
import { ensureEnrolled } from './enrollment.js';
import { HealthMonitor } from './health-monitor.js';
import { httpFetch, type HttpFetch } from './http-fetch.js';
import { ensureStateDir, HOST_KEY_FILE, loadOrCreateIdentity } from './identity.js';
import { TextfileExporter } from './metrics.js';
import { Nix } from './nix.js';
import { Outbox, OutboxSender } from './outbox.js';
import { reconcile } from './reconcile.js';
import { createReporter } from './reporter.js';
import { StateStore } from './state.js';
import { SystemWatch } from './system-watch.js';
import { selfChanges, snapshotSelf } from './self-update.js';
import { SpaceWatch, StateDirSpace } from './storage.js';
import { resolveAuto, resolveSystem, systemdRunning } from './system.js';
import { REBOOTSTRAP_COMMAND } from './verify.js';
import { WsTransport } from './ws.js';

/** Wires the agent's parts together and runs them; main.ts only adds process concerns. */

export class AgentFatalError extends Error {
  override readonly name = 'AgentFatalError';
}

export interface StartOptions {
  logger: Logger;
  clock?: () => Date;
  ed25519?: Ed25519;
  /** Environment for Nix and switch commands (the lab gives each host its own HOME and caches). */
  env?: NodeJS.ProcessEnv;
  /** The config file and the entry point this agent runs with: compared with what a new system provides. */
  configFile?: string;
  entryPoint?: string;
  /** A committed switch brought another configuration or package: the process should stop and be restarted. */
  onSelfChanged?: (changes: string[]) => void;
}

export interface RunningAgent {
  sync: ManifestSync;
  outbox: Outbox;
  state: StateStore;
  /** Stops taking manifests, lets the outbox flush for up to flushMs, closes connections. */
  stop(flushMs?: number): Promise<void>;
}

export async function startAgent(config: AgentConfig, options: StartOptions): Promise<RunningAgent> {
  const logger = options.logger;
  const clock = options.clock ?? (() => new Date());
  // Node's built-in Ed25519, not tweetnacl: the agent runs --jitless to stay small (agent/node-flags),
  // where tweetnacl's pure JavaScript takes 40-90 ms per signature; OpenSSL's takes well under 1 ms.
  const ed25519 = options.ed25519 ?? nodeEd25519;
  let stopping = false;

  // Before anything can switch the system under us: what this agent runs with.
  const self = await snapshotSelf(options.configFile, options.entryPoint);
  await ensureStateDir(config.stateDir);
  // State before identity: a first start writes its state before it makes the host key, so a
  // host key without any state can only mean the state was lost, never a first start.
  const state = await StateStore.open(config.stateDir, { alreadySetUp: existsSync(join(config.stateDir, HOST_KEY_FILE)) });
  logStateOrigin(state, logger);
  const { identity, created } = await loadOrCreateIdentity(config.stateDir, { enrolled: state.get().enrolled, logger });
  logger.info(
    { publicKey: formatPublicKey({ keyId: config.host, publicKey: identity.publicKey }), fingerprint: keyFingerprint(identity.publicKey), created },
    'host identity loaded',
  );
  const outbox = await Outbox.open(config.stateDir, { logger });
  const space = new StateDirSpace(config.stateDir, logger);
  if (!(await space.ensureReserve())) logger.error({ stateDir: config.stateDir }, 'state directory is full: no room for the space reserve');
  // Any answer from the controller, whatever its status, is contact (for the metrics textfile).
  let lastContactMs: number | null = null;
  const contactFetch: HttpFetch = (url, init) =>
    httpFetch(url, init).then((response) => {
      lastContactMs = Date.now();
      return response;
    });
  // What the agent tells the controller at every login; a state lost (refusing everything) says 0.
  const watermark = () => {
    const { highestVersion, highestFloor, highestStorePath } = state.get();
    return { highestVersion, highestFloor, highestStorePath };
  };
  const endpoints = new ControllerEndpoints(controllerUrlsOf(config), logger);
  const client = new ControllerClient({ baseUrl: endpoints, host: config.host, identity, ed25519, fetch: contactFetch, watermark });
  const sender = new OutboxSender({ outbox, send: (reports) => client.sendReports(reports), logger });
  // What the last report said the host runs: a later difference while idle is someone else's switch.
  let lastReportedSystem: string | null = null;
  const report = createReporter({
    outbox,
    onReport: () => sender.kick(),
    currentSystem: async () => (lastReportedSystem = await resolveSystem(config.paths.currentSystem)),
    clock,
    onNoSpace: () => space.release(),
  });
  const useSystemdRun = await resolveAuto(config.useSystemdRun, () => systemdRunning());
  const checkSystemdUnits = await resolveAuto(config.checkSystemdUnits, () => systemdRunning());
  const nix = new Nix({
    stateDir: config.stateDir,
    substituters: config.substituters,
    trustedPublicKeys: config.trustedPublicKeys,
    realiseTimeoutMs: config.timeouts.realiseMs,
    commandTimeoutMs: config.timeouts.commandMs,
    env: options.env,
  });
  const activator = new Activator({
    nix,
    state,
    report,
    paths: config.paths,
    timeouts: config.timeouts,
    healthChecks: config.healthChecks,
    healthDeadlineMs: config.healthDeadlineMs,
    reboot: config.reboot,
    maintenanceWindows: config.maintenanceWindows,
    windowsApplyTo: config.windowsApplyTo,
    askRebootGrant: (version) => client.requestRebootGrant(version),
    grantRetryMs: Math.min(config.pollIntervalMs, 30_000),
    useSystemdRun,
    checkSystemdUnits,
    confirmReachable: (seq, timeoutMs) => {
      sender.kick();
      return outbox.waitForAck(seq, timeoutMs);
    },
    clock,
    logger,
    env: options.env,
  });
  const sync = new ManifestSync({
    host: config.host,
    trustedControllerKeys: trustedControllerKeys(config),
    trustedReleaseKeys: trustedReleaseKeys(config),
    maxClockSkewMs: config.maxClockSkewMs,
    maxManifestLifetimeMs: config.maxManifestLifetimeMs,
    ed25519,
    state,
    activator,
    report,
    actionOverride: config.action,
    space,
    onResult: async (result) => {
      if (result.phase !== 'healthy' || !options.onSelfChanged) return;
      const running = await resolveSystem(config.paths.currentSystem);
      if (running !== result.storePath) return;
      const changes = await selfChanges(self, running, config.selfRestart);
      if (changes.length === 0) return;
      logger.warn({ changes, system: running }, 'the new system brings another agent configuration or package: restarting to use it');
      options.onSelfChanged(changes);
    },
    clock,
    logger,
  });
  const spaceWatch = new SpaceWatch({
    space,
    intervalMs: config.spaceCheckIntervalMs,
    waiting: () => sync.holding,
    onRoom: () => {
      sender.kick();
      void sync.retryHeld();
    },
    logger,
  });
  logger.info({ useSystemdRun, checkSystemdUnits, websocket: config.websocket, pendingReports: outbox.size }, 'agent starting');
  sender.kick();

  // Enrollment first: nothing else can authenticate before it. Retries while the controller is down.
  for (let attempt = 0; ; attempt++) {
    const enrolled = await ensureEnrolled({ state, client, tokenFile: config.enrollmentTokenFile, host: config.host, logger });
    if (enrolled.ok) break;
    if (!enrolled.retry) throw new AgentFatalError(enrolled.message);
    const delay = jitteredBackoff(attempt, { baseMs: 1_000, maxMs: 30_000, random: Math.random });
    logger.warn({ retryInMs: delay }, enrolled.message);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }

  // Local safety before anything new: finish or undo an activation the agent died in.
  const reconciled = await reconcile({
    activator,
    state,
    report,
    paths: config.paths,
    useSystemdRun,
    switchTimeoutMs: config.timeouts.switchMs,
    logger,
  });
  if (reconciled.kind === 'resolved') logger.info({ phase: reconciled.result.phase }, 'reconciled the activation from before the restart');

  let ws: WsTransport | null = null;
  const poller = new Poller({
    client,
    intervalMs: config.pollIntervalMs,
    waitSeconds: config.longPollSeconds,
    shouldPoll: () => !ws?.connected,
    onEnvelope: (envelope) => sync.sync(envelope),
    onReachable: () => sender.kick(),
    logger,
  });
  if (config.websocket) {
    ws = new WsTransport({
      controllerUrl: endpoints,
      host: config.host,
      identity,
      ed25519,
      logger,
      onManifest: (envelope) => void sync.sync(envelope),
      onWelcome: (session) => {
        client.useSession(session);
        sender.kick();
      },
      onConnectedChange: (connected) => {
        if (!connected) poller.now();
      },
      watermark,
    });
    ws.start();
  }
  poller.start();
  const systemWatch = new SystemWatch({
    state,
    report,
    currentSystem: () => resolveSystem(config.paths.currentSystem),
    lastReported: () => lastReportedSystem,
    idle: () => sync.idle,
    intervalMs: config.pollIntervalMs,
    logger,
  });
  systemWatch.start();
  spaceWatch.start();
  const exporter = config.metricsTextfile
    ? new TextfileExporter({
        file: config.metricsTextfile,
        host: config.host,
        intervalMs: 15_000,
        state: () => state.get(),
        paths: config.paths,
        // An open websocket is live contact (pings), though no HTTP answer may have come for a while.
        lastContactMs: () => (ws?.connected ? Date.now() : lastContactMs),
        logger,
      })
    : null;
  exporter?.start();
  // Without checks there is nothing to watch; null or 0 is the operator's off switch.
  const monitor =
    config.healthMonitorIntervalMs && config.healthChecks.length > 0
      ? new HealthMonitor({
          checks: config.healthChecks,
          intervalMs: config.healthMonitorIntervalMs,
          state,
          currentSystem: () => resolveSystem(config.paths.currentSystem),
          busy: () => !sync.idle,
          report,
          logger: logger.child({ component: 'health-monitor' }),
        })
      : null;
  monitor?.start();
  logger.info({ healthMonitorIntervalMs: monitor ? config.healthMonitorIntervalMs : null }, 'agent running');

  return {
    sync,
    outbox,
    state,
    async stop(flushMs = 2_000) {
      stopping = true;
      systemWatch.stop();
      void monitor?.stop();
      ws?.stop();
      poller.stop();
      spaceWatch.stop();
      // An activation in flight is not waited for: its record is on disk and the next start reconciles it.
      void sync.stop();
      const flushed = await sender.flush(flushMs);
      await exporter?.stop();
      logger.info({ pendingReports: outbox.size, flushed }, 'agent stopped');
    },
  };
}

function logStateOrigin(state: StateStore, logger: Logger): void {
  const { highestVersion, highestFloor, stateLost } = state.get();
  switch (state.origin) {
    case 'restored':
      logger.warn(
        { file: state.file, copy: state.watermarkFile, highestVersion, highestFloor },
        'state file was missing; restored the highest accepted version and floor from its copy (an activation in flight, if any, is forgotten)',
      );
      return;
    case 'lost':
      logger.error({ file: state.file, copy: state.watermarkFile }, `state and its copy are missing but the host key exists: refusing every manifest until \`${REBOOTSTRAP_COMMAND}\``);
      return;
    case 'loaded':
      if (stateLost) logger.error({ file: state.file }, `state was lost before: refusing every manifest until \`${REBOOTSTRAP_COMMAND}\``);
      return;
    case 'first-start':
      logger.info({ file: state.file }, 'first start: new state');
      return;
  }
}
