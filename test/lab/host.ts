import { existsSync, lstatSync, readFileSync, readlinkSync, readdirSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { labAgentConfig, type AgentConfigFile } from './agent-config.js';
import type { Resource, ResourceScope } from './cleanup.js';
import { LabProcess, type ExitStatus } from './lab-process.js';
import { namespacedArgv } from './namespace.js';
import { childPids } from './pids.js';
import type { HostNetwork } from './network.js';
import { CommandError, run, type RunOptions, type RunResult } from './run.js';
import type { LabSystem } from './systems.js';
import { waitFor } from './wait.js';

export interface StartAgentOptions {
  /** Overrides for the lab's agent config (written to agent.json). */
  config?: Partial<AgentConfigFile>;
  /** Run with this config file instead of the lab's agent.json, e.g. one the system provides (/run/current-system/etc/shoal/agent.json). */
  configFile?: string;
  args?: string[];
  /** Restart the agent whenever it exits on its own, as systemd's Restart=always does (not after stop() or kill()). */
  supervise?: boolean;
  restartDelayMs?: number;
  /**
   * The agent's reboot command reboots this lab host: it leaves a request in /run/lab, the lab
   * sees it, runs reboot() (agent killed, /run emptied, boot default booted) and starts the
   * agent again, as a host's systemd would after a real reboot. Every reboot is a line in
   * reboots() (/run/lab survives lab reboots).
   */
  rebootable?: boolean;
}

/** The reboot command lab agents get with `rebootable`: record the request; the lab does the rest. */
export const LAB_REBOOT_COMMAND = ['/bin/sh', '-c', '/bin/mkdir -p /run/lab && echo "$(/bin/date +%s%3N) $(/bin/readlink -f /nix/var/lab/boot-default)" >> /run/lab/reboots.log && : > /run/lab/reboot-request'];

/** What a host needs from the rest of its lab: where the cache and the controller are. */
export interface HostServices {
  readonly repoRoot: string;
  /** node and its arguments up to the agent's own (see LabOptions.agent). */
  readonly agentCommand: readonly string[];
  substituters(): string[];
  trustedPublicKeys(): string[];
  /** The lab network's state (bridge, ports, neighbour tables), for failure messages of networked hosts. */
  networkDiagnostics(): Promise<string>;
  /** The controller as this host reaches it, or null when the lab has none running. */
  controller(): {
    url: string;
    /** Controller replicas: every URL the agent may use, this host's first choice first. */
    urls?: string[];
    releasePublicKey: string;
    controllerPublicKey: string;
    createEnrollmentToken(): Promise<string>;
  } | null;
}

export interface Activation {
  at: number;
  action: string;
  path: string;
}

/** A generation of the host's system profile, e.g. system-2-link → /nix/store/…. */
export interface Generation {
  number: number;
  path: string;
}

const PROFILE = 'nix/var/nix/profiles/system';

/**
 * One lab host: a directory with its own nix/ and run/ (bound over /nix and /run inside its
 * namespaces), home/ and cache/ (HOME, XDG_CACHE_HOME: Nix caches narinfo look-ups there),
 * state/ (the agent's state dir) and, optionally, its own network namespace. Everything it
 * observes (current system, profile, activations, store) is read from the machine's side.
 */
export class LabHost {
  readonly paths: { dir: string; nix: string; run: string; home: string; cache: string; state: string; config: string; enrollToken: string; agentLog: string };
  agent: LabProcess | null = null;
  /** How every agent process of this host ended, oldest first (with supervise, one per restart). */
  readonly agentExits: ExitStatus[] = [];
  private agentResource: Resource | null = null;

  constructor(
    readonly name: string,
    dir: string,
    readonly network: HostNetwork | null,
    private readonly services: HostServices,
    private readonly scope: ResourceScope,
  ) {
    this.paths = {
      dir,
      nix: join(dir, 'nix'),
      run: join(dir, 'run'),
      home: join(dir, 'home'),
      cache: join(dir, 'cache'),
      state: join(dir, 'state'),
      config: join(dir, 'agent.json'),
      enrollToken: join(dir, 'enroll-token'),
      agentLog: join(dir, 'agent.log'),
    };
  }

  /** Creates the directories; a networked host also learns the name of its interface. */
  async init(): Promise<void> {
    for (const d of [this.paths.nix, this.paths.run, this.paths.home, this.paths.cache]) await mkdir(d, { recursive: true });
    await mkdir(this.paths.state, { recursive: true, mode: 0o700 });
    await mkdir(join(this.paths.run, 'lab'), { recursive: true });
    if (this.network) await writeFile(join(this.paths.run, 'lab', 'netns-iface'), `${this.network.iface}\n`);
  }

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: this.paths.home, XDG_CACHE_HOME: this.paths.cache };
    for (const key of ['NIX_REMOTE', 'NIX_STORE_DIR', 'NIX_STATE_DIR', 'NIX_CONF_DIR', 'NIX_PATH']) delete env[key];
    return env;
  }

  private argv(command: readonly string[]): string[] {
    return namespacedArgv({ nixDir: this.paths.nix, runDir: this.paths.run, netns: this.network?.netns ?? null }, command);
  }

  /** Runs a command inside the host (its /nix, /run, HOME, network). */
  exec(command: readonly string[], options: Omit<RunOptions, 'env'> = {}): Promise<RunResult> {
    const [program, ...args] = this.argv(command);
    return run(setprivPath(), ['--pdeathsig', 'KILL', '--', program!, ...args], { cwd: this.services.repoRoot, ...options, env: this.env() });
  }

  /**
   * A long-running process inside the host (e.g. a service a health check probes), released
   * with the lab. Its output goes to `logFile` (default: <host>/<label>.log).
   */
  spawn(label: string, command: readonly string[], logFile = join(this.paths.dir, `${label}.log`)): LabProcess {
    const child = this.processIn(`${this.name} ${label}`, command, logFile);
    this.scope.add(child);
    return child;
  }

  private processIn(label: string, command: readonly string[], logFile: string): LabProcess {
    const [program, ...args] = this.argv(command);
    return new LabProcess(label, program!, args, { cwd: this.services.repoRoot, env: this.env(), logFile });
  }

  /** Like exec, but a non-zero exit throws CommandError naming the command and its output. */
  async execOk(command: readonly string[], options: Omit<RunOptions, 'env'> = {}): Promise<string> {
    const result = await this.exec(command, options);
    if (result.exitCode !== 0) throw new CommandError({ ...result, command: `[${this.name}] ${command.join(' ')}` });
    return result.stdout;
  }

  /** A shell script inside the host; throws when it fails. */
  sh(script: string, options: Omit<RunOptions, 'env'> = {}): Promise<string> {
    return this.execOk(['/bin/sh', '-ec', script], options);
  }

  /**
   * Realises `storePath` into the host's own store from the lab's substituters (or those
   * given), as the agent would. Returns the result; exitCode 0 means it is now valid.
   */
  realise(storePath: string, options: { substituters?: string[]; trustedPublicKeys?: string[] } = {}): Promise<RunResult> {
    const substituters = options.substituters ?? this.services.substituters();
    if (substituters.length === 0) throw new Error(`cannot realise ${storePath} on ${this.name}: the lab serves no binary cache yet`);
    const keys = options.trustedPublicKeys ?? this.services.trustedPublicKeys();
    return this.exec(
      [
        'nix-store', '--realise', storePath, '--option', 'substituters', substituters.join(' '), '--option', 'trusted-public-keys', keys.join(' '),
        // curl's default is 300 s: a cache the host cannot reach must fail the step with Nix's
        // own "Connection timed out", not outlast the test that waits for it.
        '--option', 'connect-timeout', '5',
      ],
      { timeoutMs: 60_000 },
    );
  }

  /** realise, but a failure throws, naming the host and the command, with the lab network's state for a networked host. */
  async realiseOk(storePath: string, options: { substituters?: string[]; trustedPublicKeys?: string[] } = {}): Promise<void> {
    const result = await this.realise(storePath, options);
    if (result.exitCode === 0) return;
    const error = new CommandError({ ...result, command: `[${this.name}] ${result.command}` });
    if (this.network) error.message += `\nlab network:\n${await this.services.networkDiagnostics()}`;
    throw error;
  }

  /**
   * Installs `system` the way a NixOS installation leaves a host: realised from the lab cache
   * into the host's own store, a profile generation, activated with `switch` (which also makes
   * it the boot default) and recorded as the booted system. Call again to add generations.
   */
  async bootstrap(system: LabSystem | string): Promise<void> {
    const path = typeof system === 'string' ? system : system.path;
    await this.realiseOk(path);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    await this.sh(
      [
        `nix-env --profile /nix/var/nix/profiles/system --set ${q(path)}`,
        `${q(path)}/bin/switch-to-configuration switch`,
        `/bin/ln -sfn ${q(path)} /run/booted-system`,
      ].join('\n'),
      { timeoutMs: 60_000 },
    );
  }

  // ---- What the host looks like from outside -----------------------------------------------

  private link(pathInHost: string): string | null {
    try {
      return readlinkSync(join(this.paths.dir, pathInHost));
    } catch {
      return null;
    }
  }

  /** Where /run/current-system points, or null. */
  currentSystem(): string | null {
    return this.link('run/current-system');
  }

  bootedSystem(): string | null {
    return this.link('run/booted-system');
  }

  /** The system that boots next (set by switch-to-configuration switch/boot). */
  bootDefault(): string | null {
    return this.link('nix/var/lab/boot-default');
  }

  /** The store path the system profile points at (following system → system-N-link). */
  profileSystem(): string | null {
    const generation = this.link(PROFILE);
    if (generation === null) return null;
    return generation.startsWith('/') ? generation : this.link(join('nix/var/nix/profiles', generation));
  }

  generations(): Generation[] {
    const dir = join(this.paths.nix, 'var/nix/profiles');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .map((entry) => /^system-(\d+)-link$/.exec(entry))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ number: Number(m[1]), path: readlinkSync(join(dir, m[0])) }))
      .sort((a, b) => a.number - b.number);
  }

  /** Every switch-to-configuration run on this host, oldest first. */
  activations(): Activation[] {
    let text = '';
    try {
      text = readFileSync(join(this.paths.run, 'lab/activations.log'), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [at, action, path] = line.split(' ');
        return { at: Number(at), action: action!, path: path! };
      });
  }

  /** Whether `storePath` exists in this host's own store (not the machine's). */
  hasStorePath(storePath: string): boolean {
    try {
      lstatSync(join(this.paths.nix, storePath.slice('/nix'.length)));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * What the lab health check reads on this host for `system` (its etc/health, in this host's own
   * store copy): "ok" passes, anything else fails. Flipping it makes a running system turn
   * unhealthy (or well again) without an activation, as a service that breaks after a deploy.
   * The file is replaced, not written through, so no other store sharing its inode changes.
   */
  async setHealth(system: string, health: string): Promise<void> {
    const etc = join(this.paths.nix, system.slice('/nix'.length), 'etc');
    await chmod(etc, 0o755);
    try {
      await rm(join(etc, 'health'), { force: true });
      await writeFile(join(etc, 'health'), `${health}\n`, { mode: 0o444 });
    } finally {
      await chmod(etc, 0o555);
    }
  }

  /** Whether the Nix database of this host's store lists `storePath` as valid. */
  async storePathValid(storePath: string): Promise<boolean> {
    const result = await this.exec(['nix-store', '--check-validity', storePath]);
    return result.exitCode === 0;
  }

  /** Whether a TCP connection from inside the host to address:port succeeds within timeoutMs. */
  async canReach(address: string, port: number, timeoutMs = 2_000): Promise<boolean> {
    const probe = ['/usr/bin/timeout', String(timeoutMs / 1000), '/bin/bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`];
    const argv = this.network ? ['ip', 'netns', 'exec', this.network.netns, ...probe] : probe;
    const result = await run(argv[0]!, argv.slice(1));
    return result.exitCode === 0;
  }

  /** Whether the host's lab interface is up (false after a break-network switch). */
  async networkUp(): Promise<boolean> {
    if (!this.network) return true;
    const result = await run('ip', ['-n', this.network.netns, '-o', 'link', 'show', this.network.iface]);
    return /[<,]UP[,>]/.test(result.stdout);
  }

  // ---- The agent ---------------------------------------------------------------------------

  /** The agent config for this host: lab defaults, the lab's cache and controller, then `overrides`. */
  agentConfig(overrides: Partial<AgentConfigFile> = {}): AgentConfigFile {
    const controller = this.services.controller();
    return labAgentConfig(
      {
        host: this.name,
        controllerUrl: controller?.url ?? 'http://127.0.0.1:9',
        ...(controller?.urls ? { controllerUrls: controller.urls } : {}),
        trustedReleaseKeys: controller ? [controller.releasePublicKey] : [],
        trustedControllerKeys: controller ? [controller.controllerPublicKey] : [],
        stateDir: this.paths.state,
        enrollmentTokenFile: this.paths.enrollToken,
        substituters: this.services.substituters(),
        trustedPublicKeys: this.services.trustedPublicKeys(),
      },
      overrides,
    );
  }

  async writeConfig(overrides: Partial<AgentConfigFile> = {}): Promise<AgentConfigFile> {
    const config = this.agentConfig(overrides);
    await writeFile(this.paths.config, `${JSON.stringify(config, null, 2)}\n`);
    return config;
  }

  /** True once the agent has made its identity (it enrolls on the first start). */
  get enrolled(): boolean {
    return existsSync(join(this.paths.state, 'host.key'));
  }

  /**
   * Starts the agent inside the host. Writes the config unless one exists (or `config` is
   * given) and, for a host not yet enrolled, an enrollment token made on the lab controller.
   */
  async start(options: StartAgentOptions = {}): Promise<LabProcess> {
    if (this.agent?.running) throw new Error(`the agent of ${this.name} is already running (pid ${this.agent.pid})`);
    const config = options.rebootable && options.config ? { ...options.config, reboot: { command: LAB_REBOOT_COMMAND, ...options.config.reboot } } : options.config;
    if (!options.configFile && (config || !existsSync(this.paths.config))) await this.writeConfig(config);
    const controller = this.services.controller();
    if (!this.enrolled && !existsSync(this.paths.enrollToken) && controller) {
      await writeFile(this.paths.enrollToken, `${await controller.createEnrollmentToken()}\n`, { mode: 0o600 });
    }
    const command = [
      ...this.services.agentCommand,
      'run', '--config', options.configFile ?? this.paths.config, ...(options.args ?? []),
    ];
    if (options.rebootable) this.watchRebootRequests(options);
    const agent = this.processIn(`agent ${this.name}`, command, this.paths.agentLog);
    if (this.agentResource) await this.scope.release(this.agentResource);
    this.agent = agent;
    this.agentResource = this.scope.add(agent);
    void agent.exited.then((status) => {
      this.agentExits.push(status);
      // As the NixOS module's unit (Restart=always, RestartSec): any exit but a stop the lab asked for.
      if (options.supervise && !agent.stoppedByLab && this.agent === agent) {
        setTimeout(() => {
          if (this.agent === agent && !agent.stoppedByLab) void this.start({ configFile: options.configFile, args: options.args, supervise: true });
        }, options.restartDelayMs ?? 200);
      }
    });
    return agent;
  }

  private rebootWatch: NodeJS.Timeout | null = null;

  /** Polls for the agent's reboot request (see StartAgentOptions.rebootable); one watcher per host. */
  private watchRebootRequests(options: StartAgentOptions): void {
    if (this.rebootWatch) clearInterval(this.rebootWatch);
    const request = join(this.paths.run, 'lab/reboot-request');
    let busy = false;
    this.rebootWatch = setInterval(() => {
      if (busy || !existsSync(request)) return;
      busy = true;
      void (async () => {
        try {
          await rm(request, { force: true });
          await this.reboot();
          await this.start({ ...options, config: undefined, configFile: options.configFile });
        } catch (error) {
          // The test sees it in the agent log context; the lab host stays down.
          process.stderr.write(`lab: rebooting ${this.name} failed: ${(error as Error).message}\n`);
        } finally {
          busy = false;
        }
      })();
    }, 100);
    this.rebootWatch.unref();
  }

  /** Reboots the agent asked for (rebootable hosts), oldest first: when, and the boot default it rebooted into. */
  reboots(): Array<{ at: number; bootDefault: string }> {
    let text = '';
    try {
      text = readFileSync(join(this.paths.run, 'lab/reboots.log'), 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter(Boolean).map((line) => {
      const [at, bootDefault] = line.split(' ');
      return { at: Number(at), bootDefault: bootDefault! };
    });
  }

  /** SIGTERM to the agent (through the namespace's init); SIGKILL if it has not exited after graceMs. */
  async stop(graceMs = 10_000): Promise<void> {
    const agent = this.agent;
    if (!agent?.running) return;
    agent.stoppedByLab = true;
    for (const init of childPids(agent.pid)) {
      try {
        process.kill(init, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    const timer = setTimeout(() => agent.signal('SIGKILL'), graceMs);
    await agent.exited;
    clearTimeout(timer);
  }

  /** SIGKILL to everything in the host's namespaces: the agent and whatever it was running. */
  async kill(): Promise<void> {
    await this.agent?.kill();
  }

  agentOutput(lastLines = 60): string {
    return this.agent?.output(lastLines) ?? '(agent never started)';
  }

  /** The agent's state.json, or null before it wrote one. */
  agentState(): unknown {
    try {
      return JSON.parse(readFileSync(join(this.paths.state, 'state.json'), 'utf8'));
    } catch {
      return null;
    }
  }

  /** Waits for a condition on what the host looks like; the error shows the agent's last lines. */
  waitFor<T>(what: string, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
    return waitFor(`${this.name}: ${what}`, probe, { timeoutMs, context: () => `agent output:\n${this.agentOutput()}` });
  }

  /**
   * A simulated reboot: everything in the host dies, /run is emptied (but for the lab's own
   * files), and the boot default becomes both the current and the booted system.
   */
  async reboot(): Promise<void> {
    await this.kill();
    const bootDefault = this.bootDefault();
    if (!bootDefault) throw new Error(`${this.name} has no boot default; bootstrap it first`);
    for (const entry of readdirSync(this.paths.run)) {
      if (entry !== 'lab') await rm(join(this.paths.run, entry), { recursive: true, force: true });
    }
    await this.sh(`/bin/ln -sfn ${bootDefault} /run/current-system && /bin/ln -sfn ${bootDefault} /run/booted-system`);
    if (this.network) await run('ip', ['-n', this.network.netns, 'link', 'set', this.network.iface, 'up']);
  }
}

let setpriv: string | null = null;
function setprivPath(): string {
  setpriv ??= ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? 'setpriv';
  return setpriv;
}
