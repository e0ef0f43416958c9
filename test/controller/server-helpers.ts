import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import WebSocket from 'ws';
import { toBase64, type NamedSecretKey } from '../../shared/src/keys.js';
import { AgentRoutes, PROTOCOL_VERSION, challengeMessage, controllerAudience, type ServerMessage } from '../../shared/src/protocol.js';
import { createOperatorToken } from '../../controller/src/auth/operator-tokens.js';
import { registerHost } from '../../controller/src/hosts/enrollment.js';
import { createManifestSigner } from '../../controller/src/manifests/signer.js';
import { startController, type ControllerHandle, type ControllerOptions } from '../../controller/src/server.js';
import { newHostKeys, testKeys, type TestHost, type TrustMode } from './helpers.js';
import { testDatabase } from './test-engine.js';

export interface LiveController {
  handle: ControllerHandle;
  /** Signs assignments. */
  controllerKey: NamedSecretKey;
  ciKey: NamedSecretKey;
  singleKey: NamedSecretKey | null;
  operatorToken: string;
  register(name: string): Promise<TestHost>;
  setDesired(host: string, storePath: string): Promise<Response>;
  close(): Promise<void>;
}

/**
 * A controller on a real loopback socket with its own database (SQLite file or PostgreSQL
 * database: test-engine.ts), or on `dbFile` when given (a restart test's second controller on
 * the first one's database: testDatabase(), which the test removes).
 */
export async function liveController(options: Partial<ControllerOptions> & { mode?: TrustMode } = {}): Promise<LiveController> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-controller-live-'));
  const { mode = 'single-key', dbFile, ...rest } = options;
  const { controllerKey, ciKey, singleKey, trust } = testKeys(mode);
  const database = dbFile === undefined ? await testDatabase(dir) : { database: dbFile, release: async () => undefined };
  const handle = await startController({
    dbFile: database.database,
    signer: createManifestSigner(controllerKey),
    releaseTrust: trust,
    port: 0,
    ...rest,
  });
  const { token: operatorToken } = await createOperatorToken(handle.store, handle.deps.clock, 'test-admin');
  return {
    handle,
    controllerKey,
    ciKey,
    singleKey,
    operatorToken,
    async register(name) {
      const host = newHostKeys(name);
      await registerHost(handle.store, handle.deps.clock, { name, publicKey: host.publicKey, tags: [], actor: 'test' });
      return host;
    },
    setDesired: (host, storePath) =>
      fetch(`${handle.url}/v1/hosts/${host}/desired`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ storePath }),
      }),
    async close() {
      await handle.close();
      await database.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A websocket client that queues what the server says, so tests can await the next message or the close. */
export class AgentSocket {
  readonly ws: WebSocket;
  private readonly queue: ServerMessage[] = [];
  private readonly waiting: Array<(message: ServerMessage) => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  /** The origin this socket signs for: the controller's, unless a test says otherwise. */
  readonly audience: string;

  /** `localAddress` (e.g. 127.0.0.2) makes the socket come from another source address. */
  constructor(url: string, options: { audience?: string; localAddress?: string } = {}) {
    this.audience = options.audience ?? controllerAudience(url);
    this.ws = new WebSocket(url.replace(/^http/, 'ws') + AgentRoutes.websocket, options.localAddress ? { localAddress: options.localAddress } : {});
    this.ws.on('error', () => {});
    this.ws.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ServerMessage;
      const waiter = this.waiting.shift();
      if (waiter) waiter(message);
      else this.queue.push(message);
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  next(timeoutMs = 2000): Promise<ServerMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no websocket message within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });
  }

  async expect<T extends ServerMessage['type']>(type: T): Promise<Extract<ServerMessage, { type: T }>> {
    const message = await this.next();
    if (message.type !== type) throw new Error(`expected a ${type} message, got ${JSON.stringify(message)}`);
    return message as Extract<ServerMessage, { type: T }>;
  }

  /** Answers the challenge as `host`, signing with `keys` (its own unless a test forges). */
  async authenticate(host: TestHost, keys: nacl.SignKeyPair = host.keys, facts: { publicKey?: string; watermark?: { highestVersion: number; highestFloor: number } } = {}): Promise<void> {
    const { nonce } = await this.expect('challenge');
    const signature = toBase64(nacl.sign.detached(challengeMessage(host.name, nonce, this.audience), keys.secretKey));
    this.ws.send(JSON.stringify({ type: 'auth', protocol: PROTOCOL_VERSION, host: host.name, signature, ...facts }));
  }

  close(): void {
    this.ws.close();
  }
}
