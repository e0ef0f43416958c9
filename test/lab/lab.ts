import { rmSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentNodeFlags, bundleAgent } from '../../agent/build/bundle.js';
import { isHostName } from '../../shared/src/names.js';
import { serveCache, type CacheServer } from './cache-server.js';
import { ResourceScope } from './cleanup.js';
import { createReleaseKey, LabController, type LabTrustMode, type ReleaseKey } from './controller.js';
import type { CacheFixture } from './fixtures.js';
import { LabHost } from './host.js';
import { LabBridge, sweepStaleNetworks } from './network.js';
import { sweepDirsOfDeadProcesses, uniqueSuffix } from './pids.js';
import { startPostgres, type PostgresServer } from './postgres.js';
import { engineOf, LabReplicas, rotated } from './replicas.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const DIR_PREFIX = 'shoal-lab-';

/** A binary cache as the controller's config names it. */
export interface LabCacheConfig {
  url: string;
  publicKeys: string[];
}

/** The binary caches a lab serves (a LabFixtures has both). */
export interface LabCaches {
  cache: CacheFixture;
  untrustedCache?: CacheFixture;
}

export interface LabOptions {
  fixtures: LabCaches;
  /**
   * Give every host its own network namespace on a lab bridge (needed to cut a host's
   * network). The cache and the controller then listen on the bridge's address.
   */
  network?: boolean;
  /** Leave the lab's directory in place after cleanup, to look at logs and stores. */
  keepDir?: boolean;
  /**
   * What the hosts run: 'source' (default) runs agent/src under tsx, so a test always runs the
   * code as it is in the checkout with no build step; 'bundle' builds the agent bundle as
   * `npm run build:agent` does (into the lab's directory) and runs it with agent/node-flags, as
   * the NixOS package's wrapper does.
   */
  agent?: 'source' | 'bundle';
}

/**
 * One fleet lab: a directory under /tmp, an HTTP binary cache, a controller and hosts, all
 * registered for cleanup. Typical use:
 *
 *   const lab = await Lab.start({ fixtures, network: false });
 *   const controller = await lab.startController();
 *   const host = await lab.addHost('web-1', { bootstrap: fixtures.systems.base });
 *   await host.start();
 *   await controller.client.setDesired('web-1', fixtures.systems.v2.path);
 *   await controller.waitForHost('web-1', 'healthy on v2', (h) => h.phase === 'healthy' && …);
 *   await lab.cleanup();
 */
export class Lab {
  readonly hosts = new Map<string, LabHost>();
  cache: CacheServer | null = null;
  untrustedCache: CacheServer | null = null;
  uploadCache: CacheServer | null = null;
  controller: LabController | null = null;
  /** Controller replicas on one database (startReplicas); agents get all their URLs. */
  replicas: LabReplicas | null = null;
  postgres: PostgresServer | null = null;

  private constructor(
    readonly scope: ResourceScope,
    readonly dir: string,
    readonly fixtures: LabCaches,
    readonly bridge: LabBridge | null,
    private readonly agentCommand: readonly string[],
  ) {}

  static async start(options: LabOptions): Promise<Lab> {
    sweepStaleNetworks();
    sweepStaleDirs();
    const dir = join(tmpdir(), `${DIR_PREFIX}${uniqueSuffix()}`);
    await mkdir(dir, { recursive: true });
    const scope = new ResourceScope();
    const removeDir = () => {
      if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    };
    scope.add({ label: `directory ${dir}`, release: async () => removeDir(), releaseSync: removeDir });
    let bridge: LabBridge | null = null;
    if (options.network) {
      bridge = await LabBridge.create();
      scope.add(bridge);
    }
    let agentCommand = [process.execPath, '--import', 'tsx', join(REPO_ROOT, 'agent/src/main.ts')];
    if (options.agent === 'bundle') {
      const bundle = join(dir, 'shoal-agent.mjs');
      await bundleAgent(bundle);
      agentCommand = [process.execPath, ...agentNodeFlags(), bundle];
    }
    return new Lab(scope, dir, options.fixtures, bridge, agentCommand);
  }

  /** The address lab services listen on and hosts dial: the bridge's, or loopback. */
  get serviceAddress(): string {
    return this.bridge?.gateway ?? '127.0.0.1';
  }

  /** Serves the trusted fixture cache (idempotent). */
  async serveCache(): Promise<CacheServer> {
    if (!this.cache) {
      const cache = await serveCache(this.fixtures.cache.dir, { host: this.serviceAddress });
      this.scope.add({ label: `cache ${cache.url}`, release: () => cache.close(), releaseSync: () => undefined });
      this.cache = cache;
    }
    return this.cache;
  }

  /** Serves the cache whose paths are signed by a key no lab host trusts (idempotent). */
  async serveUntrustedCache(): Promise<CacheServer> {
    if (!this.untrustedCache) {
      if (!this.fixtures.untrustedCache) throw new Error('this lab was started without an untrusted cache');
      const cache = await serveCache(this.fixtures.untrustedCache.dir, { host: this.serviceAddress });
      this.scope.add({ label: `untrusted cache ${cache.url}`, release: () => cache.close(), releaseSync: () => undefined });
      this.untrustedCache = cache;
    }
    return this.untrustedCache;
  }

  /**
   * Serves an empty cache in the lab's directory that accepts uploads, as CI's cache does:
   * `shoal release push-closures --to <url> --cache-key <fixtures.cache.key.secretKeyFile>`
   * fills it with paths the hosts trust. Its URL joins the hosts' substituters, so serve it
   * before adding hosts (idempotent).
   */
  async serveUploadCache(): Promise<CacheServer> {
    if (!this.uploadCache) {
      const cache = await serveCache(join(this.dir, 'upload-cache'), { host: this.serviceAddress, writable: true });
      this.scope.add({ label: `upload cache ${cache.url}`, release: () => cache.close(), releaseSync: () => undefined });
      this.uploadCache = cache;
    }
    return this.uploadCache;
  }

  /**
   * Starts the controller on a fresh state dir with fresh keys: a controller key, and a release
   * key that the controller holds itself (single-key mode, the default: tests create unsigned
   * releases and `set` any system) or that only the test holds, as CI would (`trust: 'two-key'`;
   * publish with signed bundles, see controller.releaseKey).
   */
  async startController(
    options: { args?: string[]; releaseKey?: ReleaseKey; port?: number; trust?: LabTrustMode; caches?: 'lab' | LabCacheConfig[] } = {},
  ): Promise<LabController> {
    if (this.controller?.running) throw new Error('this lab already runs a controller; use controller.restart()');
    if (this.replicas) throw new Error('this lab runs controller replicas (startReplicas); it has no single controller');
    const stateDir = join(this.dir, 'controller');
    const keys = join(this.dir, 'keys');
    // caches: the binary caches the controller reads (closure diffs, the rollout preflight); 'lab': the lab cache with its key.
    const caches = options.caches === 'lab' ? [{ url: (await this.serveCache()).url, publicKeys: [this.fixtures.cache.key.publicKey] }] : options.caches;
    const configArgs: string[] = [];
    if (caches) {
      const file = join(this.dir, 'controller-caches.json');
      await writeFile(file, JSON.stringify({ caches, cacheConcurrency: 16, cacheTimeoutSeconds: 5 }));
      configArgs.push('--config', file);
    }
    const releaseKey = options.releaseKey ?? (await createReleaseKey(keys));
    const controllerKey = await createReleaseKey(keys, 'lab-controller-1');
    const controller = new LabController(
      { repoRoot: REPO_ROOT, stateDir, releaseKey, controllerKey, trust: options.trust ?? 'single-key', host: this.serviceAddress, port: options.port, args: [...configArgs, ...(options.args ?? [])] },
      this.scope,
    );
    this.controller = controller;
    await controller.start();
    return controller;
  }

  /**
   * A private PostgreSQL server for this lab (test/lab/postgres.ts), released with it: after the
   * replicas using it, since resources are released newest first (idempotent).
   */
  async startPostgres(): Promise<PostgresServer> {
    this.postgres ??= await startPostgres({ scope: this.scope });
    return this.postgres;
  }

  /**
   * Starts `count` controller replicas on one database (issue 16): a PostgreSQL URL (with its
   * password, e.g. the lab's startPostgres().url) or a SQLite file (one replica only). They share
   * one config file (database, its password in a 0600 file as an operator would keep it, caches),
   * the controller key and the release key; each has its own state dir (controller-1/, …) and port.
   * The first starts alone (it creates the operator token in the empty database and writes
   * admin-token; the others find a token and write none), the others then together. Agents added
   * afterwards list every replica's URL, host i starting with replica i mod count.
   */
  async startReplicas(options: { count: number; database: string; args?: string[]; caches?: 'lab' | LabCacheConfig[] }): Promise<LabReplicas> {
    if (this.controller || this.replicas) throw new Error('this lab already has a controller');
    const engine = engineOf(options.database);
    if (engine === 'sqlite' && options.count !== 1) throw new Error(`a SQLite database serves one controller process, not ${options.count}: give a postgres:// URL`);
    const keys = join(this.dir, 'keys');
    const releaseKey = await createReleaseKey(keys);
    const controllerKey = await createReleaseKey(keys, 'lab-controller-1');
    const config: Record<string, unknown> = {};
    if (engine === 'postgres') {
      const url = new URL(options.database);
      const passwordFile = join(keys, 'database-password');
      await writeFile(passwordFile, `${decodeURIComponent(url.password)}\n`, { mode: 0o600 });
      url.password = '';
      config.database = url.toString();
      config.databasePasswordFile = passwordFile;
    } else {
      config.database = options.database;
    }
    const caches = options.caches === 'lab' ? [{ url: (await this.serveCache()).url, publicKeys: [this.fixtures.cache.key.publicKey] }] : options.caches;
    if (caches) Object.assign(config, { caches, cacheConcurrency: 16, cacheTimeoutSeconds: 5 });
    const configFile = join(this.dir, 'controller-config.json');
    await writeFile(configFile, JSON.stringify(config));
    const firstTokenFile = join(this.dir, 'controller-1', 'admin-token');
    const replicas = Array.from(
      { length: options.count },
      (_, i) =>
        new LabController(
          {
            repoRoot: REPO_ROOT,
            stateDir: join(this.dir, `controller-${i + 1}`),
            releaseKey,
            controllerKey,
            trust: 'single-key',
            host: this.serviceAddress,
            args: ['--config', configFile, ...(options.args ?? [])],
            label: `controller replica-${i + 1}`,
            adminTokenFile: firstTokenFile,
          },
          this.scope,
        ),
    );
    this.replicas = new LabReplicas(replicas, engine, String(config.database));
    await replicas[0]!.start();
    // The token file is read from replica 1's state dir; a copy in each state dir is what an operator of that replica would find.
    await Promise.all(replicas.slice(1).map(async (replica) => {
      await mkdir(replica.options.stateDir, { recursive: true, mode: 0o700 });
      await copyFile(firstTokenFile, join(replica.options.stateDir, 'admin-token'));
      await replica.start();
    }));
    return this.replicas;
  }

  /**
   * Adds a host (own /nix, /run, HOME; own network namespace when the lab has a network
   * and `network` is not false). With `bootstrap`, the host is installed with that system
   * from the lab cache, which is served if it is not yet.
   */
  async addHost(name: string, options: { network?: boolean; bootstrap?: { path: string } } = {}): Promise<LabHost> {
    if (!isHostName(name)) throw new Error(`lab host name ${JSON.stringify(name)} is not a valid host name`);
    if (this.hosts.has(name)) throw new Error(`the lab already has a host named ${name}`);
    const wantsNetwork = options.network ?? this.bridge !== null;
    if (wantsNetwork && !this.bridge) throw new Error(`host ${name} wants its own network, but the lab was started without network: true`);
    let network = null;
    if (wantsNetwork) {
      network = await this.bridge!.attachHost();
      this.scope.add(network);
    }
    const host = new LabHost(name, join(this.dir, name), network, this.hostServices(this.hosts.size), this.scope);
    await host.init();
    this.hosts.set(name, host);
    // Served before any host needs it, so agent configs always name it.
    await this.serveCache();
    if (options.bootstrap) await host.bootstrap(options.bootstrap.path);
    return host;
  }

  /** What host number `index` (0-based, in the order added) needs; with replicas, its rotation of their URLs. */
  private hostServices(index: number) {
    return {
      repoRoot: REPO_ROOT,
      agentCommand: this.agentCommand,
      substituters: () => [this.cache, this.uploadCache].filter((c) => c !== null).map((c) => c.url),
      trustedPublicKeys: () => [this.fixtures.cache.key.publicKey],
      networkDiagnostics: () => this.networkDiagnostics(),
      controller: () => {
        if (this.replicas) {
          const replicas = this.replicas;
          const urls = rotated(replicas.urls(), index);
          const first = replicas.replicas[0]!;
          return {
            url: urls[0]!,
            urls,
            releasePublicKey: first.releasePublicKey,
            controllerPublicKey: first.controllerPublicKey,
            createEnrollmentToken: () => replicas.any().enrollmentToken(),
          };
        }
        const controller = this.controller;
        if (!controller) return null;
        return {
          url: controller.url,
          releasePublicKey: controller.releasePublicKey,
          controllerPublicKey: controller.controllerPublicKey,
          createEnrollmentToken: () => controller.enrollmentToken(),
        };
      },
    };
  }

  /** Last lines of the controller's and the agents' output, for failure messages. */
  diagnostics(lines = 30): string {
    const parts = [this.replicas ? this.replicas.diagnostics(lines) : `--- controller\n${this.controller?.output(lines) ?? '(none)'}`];
    for (const host of this.hosts.values()) parts.push(`--- agent ${host.name}\n${host.agentOutput(lines)}`);
    return parts.join('\n');
  }

  /** The lab network as the kernel sees it (bridge, ports, each host's addresses and neighbours), for failure messages. */
  async networkDiagnostics(): Promise<string> {
    if (!this.bridge) return '(this lab has no network: its hosts share the machine\'s)';
    const networks = [...this.hosts.values()].flatMap((host) => (host.network ? [host.network] : []));
    return this.bridge.diagnostics(networks);
  }

  /** Stops and removes everything this lab made. Safe to call twice. */
  async cleanup(): Promise<void> {
    await this.scope.releaseAll();
    this.hosts.clear();
    this.cache = null;
    this.untrustedCache = null;
    this.uploadCache = null;
    this.controller = null;
    this.replicas = null;
    this.postgres = null;
  }
}

/** Removes lab directories left by processes that died without cleaning up. */
export function sweepStaleDirs(root = tmpdir()): string[] {
  return sweepDirsOfDeadProcesses(DIR_PREFIX, root);
}
