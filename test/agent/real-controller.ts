import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { createOperatorToken } from '../../controller/src/auth/operator-tokens.js';
import { createEnrollmentToken, registerHost } from '../../controller/src/hosts/enrollment.js';
import { latestManifest, published } from '../../controller/src/manifests/issue.js';
import { createManifestSigner } from '../../controller/src/manifests/signer.js';
import { startController, type ControllerHandle } from '../../controller/src/server.js';
import type { Envelope } from '../../shared/src/envelope.js';
import { formatPublicKey, type NamedSecretKey } from '../../shared/src/keys.js';
import type { Report } from '../../shared/src/protocol.js';
import { testKeys } from '../controller/helpers.js';
import { serveTampered, storedEnvelope } from '../e2e/controller-db.js';

/** One HTTP exchange as the controller's socket saw it. */
export interface Exchange {
  method: string;
  path: string;
  status: number;
}

/**
 * The real controller (`startController`: the Hono app, the websocket hub, SQLite in a temporary
 * directory) on a loopback port, for the agent's tests: they meet the same protocol, limits,
 * session and challenge expiry as in production. Single-key mode, so `setDesired` issues a
 * manifest for any store path; `trust` is what an agent's config must list to accept it.
 */
export class AgentTestController {
  readonly keys = testKeys('single-key');
  /** Config fields trusting this controller's assignment key and its release key. */
  readonly trust = {
    trustedControllerKeys: [formatPublicKey(this.keys.controllerKey)],
    trustedReleaseKeys: [formatPublicKey(this.keys.singleKey as NamedSecretKey)],
  };
  /** Added to the wall clock the controller reads: moves it past session, challenge or manifest lifetimes. */
  clockOffsetMs = 0;
  /** Every HTTP exchange since the first start, in the order the answers went out. */
  readonly exchanges: Exchange[] = [];
  private handle!: ControllerHandle;
  private operatorToken = '';
  private port = 0;
  private running = false;

  private constructor(readonly dir: string) {}

  static async start(): Promise<AgentTestController> {
    const controller = new AgentTestController(await mkdtemp(join(tmpdir(), 'shoal-agent-controller-')));
    await controller.boot();
    controller.operatorToken = (await createOperatorToken(controller.handle.store, controller.handle.deps.clock, 'test-admin')).token;
    return controller;
  }

  get dbFile(): string {
    return join(this.dir, 'controller.sqlite');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get deps(): ControllerHandle['deps'] {
    return this.handle.deps;
  }

  private async boot(): Promise<void> {
    this.handle = await startController({
      dbFile: this.dbFile,
      signer: createManifestSigner(this.keys.controllerKey),
      releaseTrust: this.keys.trust,
      port: this.port,
      clock: { now: () => Date.now() + this.clockOffsetMs },
    });
    this.port = this.handle.port;
    this.running = true;
    this.handle.server.on('request', (req, res) => {
      res.on('finish', () => this.exchanges.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, status: res.statusCode }));
    });
  }

  /** Stops it as its process would stop: long-polls released, websockets closed, port freed. Sessions live in memory and go with it. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.handle.close();
  }

  /** Starts it again on the same port and database; a port taken meanwhile fails here, loudly. */
  async restart(): Promise<void> {
    await this.stop();
    await this.boot();
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  async enrollmentToken(): Promise<string> {
    return (await createEnrollmentToken(this.deps.store, this.deps.clock, { ttlMs: 3_600_000, maxUses: null, tags: [] })).token;
  }

  /** An operator vouches for `name` with `publicKey` (base64), as `shoal host register` does. */
  async register(name: string, publicKey: string): Promise<void> {
    const outcome = await registerHost(this.deps.store, this.deps.clock, { name, publicKey, tags: [], actor: 'test' });
    if (!outcome.ok) throw new Error(outcome.message);
  }

  /** The key the controller holds for `name`, base64; null when it does not know the host. */
  publicKeyOf(name: string): string | null {
    const row = this.handle.database.sqlite.prepare('select public_key as publicKey from hosts where name = ?').get(name) as { publicKey: string } | undefined;
    return row?.publicKey ?? null;
  }

  /** `PUT /v1/hosts/:name/desired` as an operator; returns the manifest version issued. */
  async setDesired(host: string, storePath: string): Promise<number> {
    // A connection of its own per call: a pooled keep-alive socket from before a restart would fail it.
    const { status, body } = await new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
      const request = httpRequest(
        `${this.url}/v1/hosts/${host}/desired`,
        { method: 'PUT', agent: false, headers: { authorization: `Bearer ${this.operatorToken}`, 'content-type': 'application/json' } },
        (response) => {
          let text = '';
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => resolve({ status: response.statusCode, body: text }));
        },
      );
      request.on('error', reject);
      request.end(JSON.stringify({ storePath }));
    });
    if (status !== 200) throw new Error(`setting the desired system of ${host} failed: ${status} ${body}`);
    return (JSON.parse(body) as { version: number }).version;
  }

  /** The envelope the controller stored (and sent) as manifest `version` of `host`. */
  storedEnvelope(host: string, version: number): Envelope {
    return storedEnvelope(this.dbFile, host, version);
  }

  /**
   * Serves `envelope` to `host` as a tampered database (or a compromised controller) would: a new
   * manifest row the controller hands out as it is, announced to the host's open websocket or
   * long-poll the way the controller announces any manifest it committed.
   */
  async serveTampered(host: string, envelope: Envelope, storePath: string): Promise<number> {
    const version = serveTampered(this.dbFile, host, envelope, storePath);
    const row = await latestManifest(this.deps.store, host);
    if (row?.version !== version) throw new Error(`the tampered manifest v${version} of ${host} is not the one served`);
    this.deps.bus.publish(published(row));
    return version;
  }

  /** What `host` reported and the controller stored, in the agent's order. */
  reports(host = 'web-1'): Report[] {
    const rows = this.handle.database.sqlite.prepare('select body from reports where host = ? order by seq').all(host) as Array<{ body: string }>;
    return rows.map((row) => JSON.parse(row.body) as Report);
  }

  phases(host = 'web-1'): string[] {
    return this.reports(host).map((r) => r.phase);
  }

  /** Whether `host` has an authenticated websocket open to the controller right now. */
  connected(host = 'web-1'): boolean {
    return this.running && this.handle.hub.isConnected(host);
  }

  /** How `host` is connected as the controller sees it (websocket, polling, offline). */
  connectionMode(host = 'web-1'): string {
    return this.deps.presence.mode(host);
  }

  /** How many events of `kind` the controller logged for `host` (e.g. `connected`: websocket logins). */
  eventCount(host: string, kind: string): number {
    return (this.handle.database.sqlite.prepare('select count(*) as n from events where host = ? and kind = ?').get(host, kind) as { n: number }).n;
  }
}

/** A real controller per call, stopped and removed after the test that asked for it. */
export function useControllers(): () => Promise<AgentTestController> {
  const started: AgentTestController[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((c) => c.cleanup()));
  });
  return async () => {
    const controller = await AgentTestController.start();
    started.push(controller);
    return controller;
  };
}
