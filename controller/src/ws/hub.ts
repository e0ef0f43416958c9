import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { AgentMessage, AgentRoutes, PROTOCOL_VERSION, WsClose, type ServerMessage } from '../../../shared/src/protocol.js';
import { AdmissionCounter, DEFAULT_ADMISSION, sourceKey, type AdmissionLimits } from '../auth/admission.js';
import { expectedAudience, verifyHostSignature } from '../auth/host-signature.js';
import { runBackground } from '../background.js';
import { iso } from '../clock.js';
import type { ControllerDeps } from '../deps.js';
import { turnBatch, type TurnBatch } from '../db/turn-batch.js';
import { appendEvents, type NewEvent } from '../events.js';
import { afterLogin, unknownHostLogin } from '../hosts/login.js';
import { recordAgentVersion } from '../hosts/agent-version.js';
import type { PublishedManifest } from '../manifests/bus.js';
import { latestManifest, published } from '../manifests/issue.js';

export interface HubOptions {
  /** How often every socket is pinged; a socket that did not answer the previous ping is terminated. */
  pingIntervalMs?: number;
  /** How long a new connection may take to answer the challenge. */
  authTimeoutMs?: number;
  /** Caps on connections that have not authenticated yet (total and per source address). */
  unauthenticated?: AdmissionLimits;
}

/** RFC 6455 "internal error": the controller failed, not the agent's proof; the agent retries. */
const INTERNAL_ERROR = 1011;

interface Connection {
  ws: WebSocket;
  host: string | null;
  alive: boolean;
  replaced: boolean;
  /** The nonce answers exactly one auth message; anything after a failed one is ignored while closing. */
  triedAuth: boolean;
  /** Frees this connection's unauthenticated slot: on welcome or close, whichever comes first. */
  releaseSlot: () => void;
  /** The write of its last connected/disconnected event: the next one is written after it, so they keep their order. */
  /** The highest manifest version sent on this socket (0: none yet). */
  sentVersion: number;
}

/**
 * The `manifest` ServerMessage as text, with the stored envelope JSON spliced in as is: at 10,000
 * hosts a wave, serialising each envelope a second time was a measurable part of the push. Parses
 * to the same message as JSON.stringify of the typed one (test/controller/ws/hub.test.ts).
 */
export function manifestMessage(manifest: PublishedManifest): string {
  return `{"type":"manifest","protocol":${JSON.stringify(PROTOCOL_VERSION)},"version":${manifest.version},"envelope":${manifest.envelopeJson}}`;
}

/**
 * The agents' websocket endpoint. A connection proves its host by signing a nonce of its own; then
 * it is the host's one live socket (a newer one replaces it) and receives every new manifest the
 * moment it is committed. Lookup and push are a Map access and one serialisation per manifest.
 */
export class AgentHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  private readonly byHost = new Map<string, Connection>();
  private readonly all = new Set<Connection>();
  private readonly pingTimer: NodeJS.Timeout;
  private readonly authTimeoutMs: number;
  private readonly unauthenticated: AdmissionCounter;
  private readonly unsubscribe: () => void;
  private readonly unsubscribeRevoked: () => void;
  /** Connected/disconnected events; close() waits for them, before the store goes away. */
  private readonly connectionEvents: TurnBatch<NewEvent>;
  private closing = false;

  constructor(
    private readonly deps: ControllerDeps,
    options: HubOptions = {},
  ) {
    this.authTimeoutMs = options.authTimeoutMs ?? 10_000;
    this.connectionEvents = turnBatch(deps.store, (events) => appendEvents(deps.store, events));
    this.unauthenticated = new AdmissionCounter(options.unauthenticated ?? DEFAULT_ADMISSION.unauthenticatedSockets);
    this.pingTimer = setInterval(() => runBackground(this.deps.logger, 'websocket pings', () => this.pingAll()), options.pingIntervalMs ?? 30_000);
    this.pingTimer.unref();
    this.unsubscribe = deps.bus.onPublish((manifest) => this.push(manifest));
    this.unsubscribeRevoked = deps.sessions.onHostRevoked((host) => this.disconnect(host));
  }

  attach(server: Server): void {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(request, socket, head));
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(request.url ?? '/', 'http://controller').pathname;
    if (path !== AgentRoutes.websocket || this.closing) {
      socket.end(`HTTP/1.1 ${this.closing ? '503 Service Unavailable' : '404 Not Found'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const audience = expectedAudience(this.deps.audience, request.headers.host ? `http://${request.headers.host}` : null);
    const source = sourceKey(request.socket.remoteAddress);
    const slot = this.unauthenticated.acquire(source);
    if (!slot.ok) {
      this.deps.metrics.admissionRefused('websocket', slot.scope);
      // Upgraded only to say why in a close frame the agent logs; no nonce, no timers, closed at once.
      const reason =
        slot.scope === 'address'
          ? `${slot.limit} unauthenticated connections from your address already; retry later`
          : `controller busy: ${slot.limit} unauthenticated connections already; retry later`;
      this.wss.handleUpgrade(request, socket, head, (ws) => ws.close(WsClose.tooManyUnauthenticated, reason));
      return;
    }
    // Also when the upgrade itself fails (the callback below then never runs).
    socket.once('close', slot.release);
    // The 101 response and the challenge leave in one write, not two: a fleet reconnecting is
    // 10,000 of each, and every write is a system call on the controller's one event-loop thread.
    socket.cork();
    process.nextTick(() => socket.uncork());
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, audience, slot.release));
  }

  /** Connections that have not authenticated (yet), and those of them from `source` (a sourceKey). */
  unauthenticatedCount(source?: string): number {
    return source === undefined ? this.unauthenticated.size : this.unauthenticated.heldBy(source);
  }

  isConnected(host: string): boolean {
    return this.byHost.has(host);
  }

  connectedHosts(): string[] {
    return [...this.byHost.keys()];
  }

  get connectedCount(): number {
    return this.byHost.size;
  }

  private accept(ws: WebSocket, audience: string | null, releaseSlot: () => void): void {
    const connection: Connection = { ws, host: null, alive: true, replaced: false, triedAuth: false, releaseSlot, sentVersion: 0 };
    this.all.add(connection);
    const nonce = randomBytes(24).toString('base64url');
    const timeout = setTimeout(() => ws.close(WsClose.authFailed, 'no auth within the deadline'), this.authTimeoutMs);
    ws.on('pong', () => {
      connection.alive = true;
      const host = connection.host;
      if (host !== null) runBackground(this.deps.logger, 'websocket presence', () => this.deps.presence.heard(host), { host });
    });
    ws.on('error', (error) => this.deps.logger.debug({ err: error, host: connection.host }, 'websocket error'));
    ws.on('close', () => {
      clearTimeout(timeout);
      releaseSlot();
      this.all.delete(connection);
      this.forget(connection);
    });
    ws.on('message', (data) => {
      connection.alive = true;
      // Agents only speak to authenticate; later chatter is ignored.
      if (connection.triedAuth) return;
      connection.triedAuth = true;
      clearTimeout(timeout);
      runBackground(this.deps.logger, 'websocket authentication', async () => {
        try {
          await this.authenticate(connection, nonce, audience, data);
        } catch (error) {
          // The agent retries later; it must not wait on a socket nobody will answer.
          ws.close(INTERNAL_ERROR, 'internal error');
          throw error;
        }
      });
    });
    this.send(ws, { type: 'challenge', protocol: PROTOCOL_VERSION, nonce });
  }

  private async authenticate(connection: Connection, nonce: string, audience: string | null, data: RawData): Promise<void> {
    const { ws } = connection;
    let raw: unknown;
    try {
      raw = JSON.parse(data.toString());
    } catch {
      return this.refuse(ws, WsClose.authFailed, 'malformed', 'auth message is not JSON');
    }
    const parsed = AgentMessage.safeParse(raw);
    if (!parsed.success) {
      const protocol = (raw as { protocol?: unknown } | null)?.protocol;
      if (protocol !== PROTOCOL_VERSION) {
        return this.refuse(ws, WsClose.protocolMismatch, 'protocol-mismatch', `controller speaks protocol ${PROTOCOL_VERSION}, got ${JSON.stringify(protocol)}`);
      }
      return this.refuse(ws, WsClose.authFailed, 'malformed', `auth message invalid: ${parsed.error.issues.map((i) => i.path.join('.') || i.message).join(', ')}`);
    }
    const { host, signature, publicKey, watermark } = parsed.data;
    const proof = await verifyHostSignature(this.deps.store, host, nonce, signature, audience);
    if (!proof.ok) {
      const message = proof.reason === 'unknown-host' ? await unknownHostLogin(this.deps, host, nonce, signature, audience, { publicKey, watermark }) : proof.message;
      return this.refuse(ws, WsClose.authFailed, proof.reason, message);
    }
    // Before registering: a manifest re-signed above the agent's watermark is then the one sent below.
    await afterLogin(this.deps, host, { watermark });
    await recordAgentVersion(this.deps.store, host, parsed.data.agentVersion);
    // The socket may have closed (or the hub begun closing) while the database answered: register
    // nothing then, since its close handler, which would undo it, has run already.
    // Before registering: no manifest may reach the socket ahead of its welcome.
    const session = await this.deps.sessions.create(host);
    if (ws.readyState !== WebSocket.OPEN || this.closing) return;
    await this.register(connection, host, session);
  }

  /** Queues a connected/disconnected event: written in order, with the others of its turn (db/turn-batch.ts). */
  private logConnection(host: string, kind: 'connected' | 'disconnected'): void {
    const { deps } = this;
    const write = this.connectionEvents.add({ host, at: deps.clock.now(), kind, actor: `agent:${host}`, data: { mode: 'websocket' } });
    runBackground(deps.logger, `websocket ${kind} event`, () => write, { host });
  }

  private async register(connection: Connection, host: string, session: { token: string; expiresAt: number }): Promise<void> {
    const previous = this.byHost.get(host);
    if (previous) {
      previous.replaced = true;
      previous.ws.close(WsClose.replaced, 'replaced by a newer connection of the same host');
    }
    connection.host = host;
    connection.releaseSlot();
    this.byHost.set(host, connection);
    const { deps } = this;
    deps.presence.websocketOpened(host);
    this.logConnection(host, 'connected');
    this.send(connection.ws, { type: 'welcome', protocol: PROTOCOL_VERSION, session: { protocol: PROTOCOL_VERSION, token: session.token, expiresAt: iso(session.expiresAt) } });
    // Registered above before this read: a manifest committed from now on is pushed (push()), and
    // the read sees every one committed before. Whichever is newer reaches the socket; an older one
    // read after a newer one was pushed is not sent.
    const latest = await latestManifest(deps.store, host);
    if (latest && latest.version > connection.sentVersion && connection.ws.readyState === WebSocket.OPEN) this.sendManifest(connection, published(latest));
  }

  private sendManifest(connection: Connection, manifest: PublishedManifest): void {
    connection.sentVersion = Math.max(connection.sentVersion, manifest.version);
    connection.ws.send(manifestMessage(manifest));
  }

  private forget(connection: Connection): void {
    const { host } = connection;
    if (host === null || connection.replaced || this.byHost.get(host) !== connection) return;
    this.byHost.delete(host);
    if (this.closing) return;
    this.deps.presence.websocketClosed(host);
    this.logConnection(host, 'disconnected');
  }

  /** A removed or re-keyed host: its socket was opened under a key that no longer counts. */
  private disconnect(host: string): void {
    const connection = this.byHost.get(host);
    if (!connection) return;
    // Forgotten here, not when it closes: a removed host has no row left to log a disconnection against.
    connection.replaced = true;
    this.byHost.delete(host);
    this.deps.presence.websocketClosed(host);
    connection.ws.close(WsClose.authFailed, 'host removed or re-keyed by an operator');
  }

  private push(manifest: PublishedManifest): void {
    const connection = this.byHost.get(manifest.host);
    if (connection && connection.ws.readyState === WebSocket.OPEN) this.sendManifest(connection, manifest);
  }

  private pingAll(): void {
    for (const connection of this.all) {
      if (!connection.alive) {
        connection.ws.terminate();
        continue;
      }
      connection.alive = false;
      connection.ws.ping();
    }
  }

  private send(ws: WebSocket, message: ServerMessage): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  private refuse(ws: WebSocket, code: number, errorCode: string, message: string): void {
    this.send(ws, { type: 'error', protocol: PROTOCOL_VERSION, code: errorCode, message });
    ws.close(code, message.slice(0, 120));
  }

  /** Closes every socket with 4503 so agents reconnect (to us after a restart, or to a peer). */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.pingTimer);
    this.unsubscribe();
    this.unsubscribeRevoked();
    const closed = [...this.all].map(
      (connection) =>
        new Promise<void>((resolve) => {
          if (connection.ws.readyState === WebSocket.CLOSED) return resolve();
          connection.ws.once('close', () => resolve());
          connection.ws.close(WsClose.shuttingDown, 'controller shutting down');
          setTimeout(() => {
            connection.ws.terminate();
            resolve();
          }, 1000).unref();
        }),
    );
    await Promise.all(closed);
    await this.connectionEvents.drained();
    this.wss.close();
  }
}
