import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatPublicKey, formatSecretKey, generateNamedKey } from '../../shared/src/keys.js';
import type { HostStatus } from '../../shared/src/operator-api.js';
import { TERMINAL_PHASES } from '../../shared/src/phases.js';
import type { Phase } from '../../shared/src/protocol.js';
import type { RolloutState, RolloutStatus } from '../../shared/src/rollout-api.js';
import type { ResourceScope } from './cleanup.js';
import { parseExposition, sampleValue } from '../controller/metrics/exposition.js';
import { LabProcess } from './lab-process.js';
import { OperatorClient } from './operator-client.js';
import { waitFor } from './wait.js';

export interface ReleaseKey {
  file: string;
  /** "name:base64", what agents list in trustedReleaseKeys (or, for the controller key, trustedControllerKeys). */
  publicKey: string;
}

/**
 * 'single-key': the controller holds the release key too (--single-key-release-key) and signs
 * statements for unsigned releases and `set`. 'two-key': it only trusts the release key's public
 * half (--trusted-release-key); releases must be bundles signed with it.
 */
export type LabTrustMode = 'single-key' | 'two-key';

/** Writes a new signing key (0600) the way `shoal keygen` would: a release key or the controller key. */
export async function createReleaseKey(dir: string, name = 'lab-release-1'): Promise<ReleaseKey> {
  await mkdir(dir, { recursive: true });
  const key = generateNamedKey(name);
  const file = join(dir, `${name}.key`);
  await writeFile(file, `${formatSecretKey(key)}\n`, { mode: 0o600 });
  return { file, publicKey: formatPublicKey(key) };
}

/**
 * The port a controller bound, from its "controller listening" line. The lab starts controllers on
 * port 0 and reads this: picking a free port first and binding it later lets another test worker
 * take it in between (seen in CI as EADDRINUSE).
 */
export function listeningPort(line: string): number {
  const port = (JSON.parse(line) as { port?: unknown }).port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0) throw new Error(`the "controller listening" line names no port: ${line}`);
  return port;
}

export interface ControllerOptions {
  repoRoot: string;
  stateDir: string;
  /** The release key: the controller's own in single-key mode, only the test's (CI's) in two-key mode. */
  releaseKey: ReleaseKey;
  /** Signs assignments. */
  controllerKey: ReleaseKey;
  trust: LabTrustMode;
  /**
   * Two-key mode: CI's public keys the controller trusts ("name:base64"); default the release
   * key's alone. Rotation tests list the old and the new key, then the new one only.
   */
  trustedReleaseKeys?: string[];
  /** Address to listen on: 127.0.0.1, or the lab bridge's address when hosts have their own network. */
  host: string;
  port?: number;
  /** Extra `serve` flags, e.g. ['--manifest-ttl-seconds', '60']. */
  args?: string[];
  startTimeoutMs?: number;
  /** Names the process in logs and errors; default "controller" (replicas: "controller replica-2"). */
  label?: string;
  /**
   * Where the operator token is read from; default STATE/admin-token. A controller writes it only
   * when the database has no operator token yet, so replicas sharing one database read the file
   * the first replica wrote.
   */
  adminTokenFile?: string;
}

/**
 * The real controller process (`controller/src/main.ts serve`) on a state dir of its own.
 * It can be stopped, killed and restarted on the same state dir and port, so agents keep
 * their URL across restarts.
 */
export class LabController {
  process!: LabProcess;
  client!: OperatorClient;
  adminToken = '';
  port = 0;
  private resource: LabProcess | null = null;

  constructor(
    readonly options: ControllerOptions,
    private readonly scope: ResourceScope,
  ) {}

  get url(): string {
    return `http://${this.options.host}:${this.port}`;
  }

  /** "name:base64": what agents list in trustedReleaseKeys. */
  get releasePublicKey(): string {
    return this.options.releaseKey.publicKey;
  }

  /** "name:base64": what agents list in trustedControllerKeys. */
  get controllerPublicKey(): string {
    return this.options.controllerKey.publicKey;
  }

  get running(): boolean {
    return this.process?.running ?? false;
  }

  /** Starts (or restarts) the controller and waits for its "controller listening" line. */
  async start(): Promise<this> {
    if (this.running) throw new Error('the lab controller is already running');
    const { repoRoot, stateDir, releaseKey, controllerKey, host } = this.options;
    const trustFlags =
      this.options.trust === 'single-key'
        ? ['--single-key-release-key', releaseKey.file]
        : (this.options.trustedReleaseKeys ?? [releaseKey.publicKey]).flatMap((key) => ['--trusted-release-key', key]);
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    // First start: the requested port, or 0 (the kernel picks one, no race). A restart reuses the
    // port agents know; if someone took it meanwhile the controller exits and start() throws.
    const port = this.port || (this.options.port ?? 0);
    if (this.resource) await this.scope.release(this.resource);
    this.process = new LabProcess(
      this.options.label ?? 'controller',
      process.execPath,
      [
        '--import', 'tsx', join(repoRoot, 'controller/src/main.ts'), 'serve',
        '--state-dir', stateDir, '--controller-key', controllerKey.file, ...trustFlags, '--listen', `${host}:${port}`,
        ...(this.options.args ?? []),
      ],
      { cwd: repoRoot, logFile: join(stateDir, 'controller.log') },
    );
    this.resource = this.process;
    this.scope.add(this.process);
    const listening = await this.process.waitForLine(isListeningLine, this.options.startTimeoutMs ?? 30_000, 'a "controller listening" log line');
    this.port = listeningPort(listening);
    this.adminToken = (await readFile(this.options.adminTokenFile ?? join(stateDir, 'admin-token'), 'utf8')).trim();
    this.client = new OperatorClient(this.url, this.adminToken);
    return this;
  }

  /** SIGTERM and wait (SIGKILL after graceMs). */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.process.signal('SIGTERM');
    const timer = setTimeout(() => this.process.signal('SIGKILL'), graceMs);
    await this.process.exited;
    clearTimeout(timer);
  }

  /** SIGKILL: the controller gets no chance to finish anything. */
  async kill(): Promise<void> {
    if (this.running) await this.process.kill();
  }

  async restart(): Promise<this> {
    await this.stop();
    return this.start();
  }

  /**
   * Restarts on the same state dir and port with another configuration, as an operator rotating
   * keys would: a new controller key file, or another list of trusted CI keys (two-key mode).
   * Hosts started afterwards get the new keys in their default config; running agents keep theirs.
   */
  async restartWith(change: { controllerKey?: ReleaseKey; trustedReleaseKeys?: string[] }): Promise<this> {
    await this.stop();
    if (change.controllerKey) this.options.controllerKey = change.controllerKey;
    if (change.trustedReleaseKeys) this.options.trustedReleaseKeys = change.trustedReleaseKeys;
    return this.start();
  }

  output(lastLines = 60): string {
    return this.process?.output(lastLines) ?? '(controller never started)';
  }

  /** An enrollment token for one host (1 use, 1 hour). */
  async enrollmentToken(tags: string[] = []): Promise<string> {
    return (await this.client.createEnrollmentToken({ maxUses: 1, ttlSeconds: 3600, tags })).token;
  }

  /**
   * Waits until the host reported one of `phases` about manifest `version`, e.g.
   * `waitForPhase('web-1', v, 'healthy')`. Fails early when it ends in another terminal phase.
   */
  async waitForPhase(name: string, version: number, phases: Phase | readonly Phase[], timeoutMs = 30_000, context?: () => string): Promise<HostStatus> {
    const wanted: readonly Phase[] = typeof phases === 'string' ? [phases] : phases;
    const status = await this.waitForHost(
      name,
      `phase ${wanted.join(' or ')} for version ${version}`,
      (s) => s.reportedVersion === version && s.phase !== null && (wanted.includes(s.phase) || TERMINAL_PHASES.has(s.phase)),
      timeoutMs,
      context,
    );
    if (!wanted.includes(status.phase!)) {
      throw new Error(`${name} ended version ${version} in phase ${status.phase}, not ${wanted.join(' or ')}: ${JSON.stringify(status)}${context ? `\n${context()}` : ''}`);
    }
    return status;
  }

  /** Polls GET /v1/hosts/NAME until `predicate` holds; the error shows the last status seen. */
  waitForHost(name: string, what: string, predicate: (status: HostStatus) => boolean, timeoutMs = 30_000, context?: () => string): Promise<HostStatus> {
    let last: HostStatus | string = 'no answer yet';
    return waitFor(
      `${name}: ${what}`,
      async () => {
        const status = await this.client.host(name).catch((error: Error) => {
          last = error.message;
          return null;
        });
        if (status) last = status;
        return status && predicate(status) ? status : null;
      },
      { timeoutMs, intervalMs: 200, context: () => `last status: ${JSON.stringify(last)}${context ? `\n${context()}` : ''}` },
    );
  }

  /** The rollout engine's completed passes so far (shoal_rollout_engine_ticks_total); from 0 again after a restart. */
  async engineTicks(): Promise<number> {
    const response = await fetch(`${this.url}/metrics`);
    if (response.status !== 200) throw new Error(`GET /metrics: HTTP ${response.status}`);
    const ticks = sampleValue(parseExposition(await response.text()), 'shoal_rollout_engine_ticks_total');
    if (ticks === undefined) throw new Error('GET /metrics has no shoal_rollout_engine_ticks_total');
    return ticks;
  }

  /**
   * Resolves once the rollout engine has completed `passes` more passes than when called. A pass
   * completed after this call also started after it (a pass is synchronous), so every deadline,
   * bake and offline wait has since been looked at: what a test awaits before asserting that a
   * rollout did not move, instead of a sleep.
   */
  async afterEngineTicks(passes = 2, context?: () => string): Promise<void> {
    const from = await this.engineTicks();
    let seen = from;
    await waitFor(
      `${passes} more rollout engine passes than ${from}`,
      async () => (seen = await this.engineTicks()) >= from + passes,
      { timeoutMs: 30_000, intervalMs: 100, context: () => `passes seen: ${seen}${context ? `\n${context()}` : ''}` },
    );
  }

  /**
   * Polls GET /v1/rollouts/ID until it is in one of `states` (or `predicate` holds, when given).
   * A rollout that ends in another final state fails the wait at once instead of timing out.
   */
  async waitForRollout(
    id: string,
    states: RolloutState | readonly RolloutState[],
    options: { timeoutMs?: number; intervalMs?: number; predicate?: (status: RolloutStatus) => boolean; context?: () => string } = {},
  ): Promise<RolloutStatus> {
    const wanted: readonly RolloutState[] = typeof states === 'string' ? [states] : states;
    const matches = (s: RolloutStatus) => wanted.includes(s.state) && (options.predicate?.(s) ?? true);
    let last: RolloutStatus | string = 'no answer yet';
    const status = await waitFor(
      `rollout ${id}: state ${wanted.join(' or ')}`,
      async () => {
        const current = await this.client.rollout(id).catch((error: Error) => {
          last = error.message;
          return null;
        });
        if (!current) return null;
        last = current;
        return matches(current) || (FINAL_ROLLOUT_STATES.has(current.state) && !wanted.includes(current.state)) ? current : null;
      },
      { timeoutMs: options.timeoutMs ?? 60_000, intervalMs: options.intervalMs ?? 100, context: () => `last status: ${JSON.stringify(last)}${options.context ? `\n${options.context()}` : ''}` },
    );
    if (!matches(status)) {
      throw new Error(`rollout ${id} ended ${status.state} (${status.reason ?? 'no reason'}), not ${wanted.join(' or ')}: ${JSON.stringify(status)}${options.context ? `\n${options.context()}` : ''}`);
    }
    return status;
  }
}

/** Rollout states nothing moves out of by itself. */
const FINAL_ROLLOUT_STATES = new Set<RolloutState>(['halted', 'rolled-back', 'succeeded', 'aborted']);

function isListeningLine(line: string): boolean {
  if (!line.startsWith('{')) return false;
  try {
    return (JSON.parse(line) as { msg?: unknown }).msg === 'controller listening';
  } catch {
    return false;
  }
}
