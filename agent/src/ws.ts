import { jitteredBackoff } from '../../shared/src/backoff.js';
import WebSocket from 'ws';
import type { Ed25519 } from '../../shared/src/ed25519.js';
import type { Envelope } from '../../shared/src/envelope.js';
import { toBase64 } from '../../shared/src/keys.js';
import type { Logger } from '../../shared/src/logger.js';
import { AgentRoutes, challengeMessage, controllerAudience, PROTOCOL_VERSION, ServerMessage, WsClose, type AgentMessage, type AgentWatermark, type Session } from '../../shared/src/protocol.js';
import { SHOAL_VERSION } from '../../shared/src/version.js';
import { ControllerEndpoints } from './endpoints.js';
import { registerCommand, type Identity } from './identity.js';

/**
 * The push side of the transport: dial out, prove the host's identity by signing the
 * controller's challenge, then hand every manifest message to `onManifest` (the same sync
 * path the poller uses). Reconnects with exponential backoff and full jitter; a connection on
 * which nothing (not even a ping) arrived for `livenessMs` is considered dead.
 */

export interface WsOptions {
  /** One controller, or several to fail over between (shared with the HTTP client). */
  controllerUrl: string | ControllerEndpoints;
  host: string;
  identity: Identity;
  ed25519: Ed25519;
  logger: Logger;
  onManifest: (envelope: Envelope, version: number) => void;
  onWelcome?: (session: Session) => void;
  onConnectedChange?: (connected: boolean) => void;
  /** The highest version and floor accepted, told at every login so a restored controller continues above them. */
  watermark?: () => AgentWatermark;
  livenessMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
}

export function websocketUrl(controllerUrl: string): string {
  const url = new URL(AgentRoutes.websocket, controllerUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export class WsTransport {
  private socket: WebSocket | null = null;
  private stopped = true;
  private authenticated = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private readonly endpoints: ControllerEndpoints;
  /** The controller the current socket dials. */
  private base: string;

  constructor(private readonly options: WsOptions) {
    this.endpoints = typeof options.controllerUrl === 'string' ? new ControllerEndpoints([options.controllerUrl]) : options.controllerUrl;
    this.base = this.endpoints.current;
  }

  get connected(): boolean {
    return this.authenticated;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.livenessTimer);
    const socket = this.socket;
    this.socket = null;
    this.setAuthenticated(false);
    if (socket) {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.terminate();
    }
  }

  private connect(): void {
    this.base = this.endpoints.current;
    const url = websocketUrl(this.base);
    const socket = new WebSocket(url, { handshakeTimeout: 15_000, maxPayload: 1024 * 1024 });
    this.socket = socket;
    this.touch();
    socket.on('message', (data) => {
      this.touch();
      this.handle(socket, data.toString());
    });
    socket.on('ping', () => this.touch());
    socket.on('pong', () => this.touch());
    socket.on('error', (error) => this.options.logger.debug({ err: error.message }, 'websocket error'));
    socket.on('close', (code, reason) => this.closed(socket, code, reason.toString()));
  }

  private handle(socket: WebSocket, text: string): void {
    let message: ServerMessage;
    try {
      message = ServerMessage.parse(JSON.parse(text));
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'ignoring a websocket message that is not in the protocol');
      return;
    }
    switch (message.type) {
      case 'challenge': {
        // The controller's origin (not the ws:// URL: the same audience as over HTTP), so the signature is worth nothing elsewhere.
        const signature = this.options.ed25519.sign(challengeMessage(this.options.host, message.nonce, controllerAudience(this.base)), this.options.identity.secretKey);
        const auth: AgentMessage = {
          type: 'auth',
          protocol: PROTOCOL_VERSION,
          host: this.options.host,
          signature: toBase64(signature),
          publicKey: toBase64(this.options.identity.publicKey),
          watermark: this.options.watermark?.(),
          agentVersion: SHOAL_VERSION,
        };
        socket.send(JSON.stringify(auth));
        return;
      }
      case 'welcome':
        this.attempt = 0;
        this.setAuthenticated(true);
        // Which controller: with several (controllerUrls, replicas) the operator sees where the agent is.
        this.options.logger.info({ controller: this.base }, 'websocket connected');
        this.options.onWelcome?.(message.session);
        return;
      case 'manifest':
        this.options.onManifest(message.envelope, message.version);
        return;
      case 'error':
        this.options.logger.warn({ code: message.code, message: message.message }, 'controller sent an error');
        return;
    }
  }

  private closed(socket: WebSocket, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.socket = null;
    clearTimeout(this.livenessTimer);
    const wasConnected = this.authenticated;
    this.setAuthenticated(false);
    if (this.stopped) return;
    // Never welcomed on this socket (refused, unreachable, turned away): try the next controller.
    // A connection that worked and dropped is dialled again first; if that fails, this moves on.
    if (!wasConnected) this.endpoints.failed(this.base, `websocket closed (${code}${reason ? `: ${reason}` : ''})`);
    const delay = jitteredBackoff(this.attempt, {
      baseMs: this.options.initialBackoffMs ?? 1_000,
      maxMs: this.options.maxBackoffMs ?? 30_000,
      random: this.options.random ?? Math.random,
    });
    this.attempt += 1;
    const level = code === WsClose.authFailed || code === WsClose.protocolMismatch ? 'error' : wasConnected ? 'warn' : 'debug';
    const unknown = code === WsClose.authFailed && reason.startsWith('no host named');
    const fix = unknown ? { fix: registerCommand(this.options.host, this.options.identity) } : {};
    this.options.logger[level](
      { code, reason, retryInMs: delay, ...fix },
      unknown
        ? `the controller does not know this host; register it there with: ${fix.fix}`
        : code === WsClose.authFailed ? 'controller refused this host\'s websocket authentication' : 'websocket closed',
    );
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  /** Any traffic proves the connection alive; silence for livenessMs means it is not. */
  private touch(): void {
    clearTimeout(this.livenessTimer);
    const socket = this.socket;
    this.livenessTimer = setTimeout(() => {
      this.options.logger.warn({ livenessMs: this.options.livenessMs ?? 75_000 }, 'no traffic on the websocket, reconnecting');
      socket?.terminate();
    }, this.options.livenessMs ?? 75_000);
  }

  private setAuthenticated(value: boolean): void {
    if (this.authenticated === value) return;
    this.authenticated = value;
    this.options.onConnectedChange?.(value);
  }
}
