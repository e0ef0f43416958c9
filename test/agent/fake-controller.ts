import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import type { Envelope } from '../../shared/src/envelope.js';
import { fromBase64 } from '../../shared/src/keys.js';
import {
  AgentMessage,
  AgentRoutes,
  challengeMessage,
  controllerAudience,
  manifestEtag,
  PROTOCOL_VERSION,
  ReportBatch,
  WsClose,
  type Report,
} from '../../shared/src/protocol.js';

/**
 * A stand-in for the controller's agent-facing contract (the brief's "fixed decisions"), on a
 * real loopback socket, so the agent's transports are tested against real HTTP and websockets
 * without depending on the controller's implementation.
 */
export class FakeController {
  readonly reports: Report[] = [];
  readonly requests: string[] = [];
  enrollToken = 'enroll-secret';
  /** Host name → base64 public key. */
  readonly hosts = new Map<string, string>();
  private sessions = new Map<string, string>();
  private nonces = new Map<string, string>();
  private manifest: { version: number; envelope: Envelope } | null = null;
  private server: Server;
  private wss: WebSocketServer;
  private sockets = new Map<string, WebSocket>();
  port = 0;
  /** Websocket connections accepted so far (authenticated or not). */
  connections = 0;
  /** When false, report batches are answered with 503 (a controller that is up but failing). */
  acceptReports = true;

  constructor() {
    this.server = createServer((req, res) => void this.route(req, res));
    this.wss = new WebSocketServer({ noServer: true });
    this.server.on('upgrade', (req, socket, head) => {
      if (req.url !== AgentRoutes.websocket) return socket.destroy();
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** What a host must have signed to log in here: its challenge bound to this controller's own origin. */
  private signedFor(host: string, nonce: string, signature: string, key: string): boolean {
    return tweetnaclEd25519.verify(challengeMessage(host, nonce, controllerAudience(this.url)), fromBase64(signature), fromBase64(key));
  }

  async start(port = 0): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Stops listening and drops every connection: the controller is unreachable. */
  async stop(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Restarts on the same port, forgetting sessions (as the real one does). */
  async restart(): Promise<void> {
    this.sessions.clear();
    this.server = createServer((req, res) => void this.route(req, res));
    this.server.on('upgrade', (req, socket, head) => {
      if (req.url !== AgentRoutes.websocket) return socket.destroy();
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
    await this.start(this.port);
  }

  forgetSessions(): void {
    this.sessions.clear();
  }

  connectedHosts(): string[] {
    return [...this.sockets.keys()];
  }

  setManifest(version: number, envelope: Envelope): void {
    this.manifest = { version, envelope };
    for (const ws of this.sockets.values()) ws.send(JSON.stringify({ type: 'manifest', protocol: PROTOCOL_VERSION, version, envelope }));
  }

  phases(): string[] {
    return [...this.reports].sort((a, b) => a.seq - b.seq).map((r) => r.phase);
  }

  private onSocket(ws: WebSocket): void {
    this.connections += 1;
    const nonce = randomBytes(24).toString('base64url');
    ws.send(JSON.stringify({ type: 'challenge', protocol: PROTOCOL_VERSION, nonce }));
    ws.once('message', (data) => {
      const message = AgentMessage.safeParse(JSON.parse(data.toString()));
      const key = message.success ? this.hosts.get(message.data.host) : undefined;
      if (
        !message.success ||
        !key ||
        !this.signedFor(message.data.host, nonce, message.data.signature, key)
      ) {
        ws.close(WsClose.authFailed, 'authentication failed');
        return;
      }
      const host = message.data.host;
      this.sockets.get(host)?.close(WsClose.replaced, 'replaced');
      this.sockets.set(host, ws);
      ws.on('close', () => {
        if (this.sockets.get(host) === ws) this.sockets.delete(host);
      });
      const token = randomBytes(16).toString('hex');
      this.sessions.set(token, host);
      ws.send(JSON.stringify({ type: 'welcome', protocol: PROTOCOL_VERSION, session: { protocol: PROTOCOL_VERSION, token, expiresAt: new Date(Date.now() + 3_600_000).toISOString() } }));
      if (this.manifest) ws.send(JSON.stringify({ type: 'manifest', protocol: PROTOCOL_VERSION, ...this.manifest }));
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const body = text ? JSON.parse(text) : null;
    const path = (req.url ?? '').split('?')[0];
    this.requests.push(`${req.method} ${path}`);
    const json = (status: number, value: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(value === undefined ? undefined : JSON.stringify(value));
    };
    const error = (status: number, code: string, message: string): void => json(status, { error: { code, message } });
    const sessionHost = (): string | undefined => this.sessions.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));

    if (req.method === 'POST' && path === AgentRoutes.enroll) {
      if (body.token !== this.enrollToken) return error(401, 'invalid-enrollment-token', 'enrollment token is not known');
      const existing = this.hosts.get(body.host);
      if (existing && existing !== body.publicKey) return error(409, 'host-key-conflict', `host "${body.host}" is already enrolled with a different public key`);
      this.hosts.set(body.host, body.publicKey);
      return json(200, { protocol: PROTOCOL_VERSION, host: body.host });
    }
    if (req.method === 'POST' && path === AgentRoutes.challenge) {
      const nonce = randomBytes(24).toString('base64url');
      this.nonces.set(nonce, body.host);
      return json(200, { protocol: PROTOCOL_VERSION, nonce, expiresAt: new Date(Date.now() + 60_000).toISOString() });
    }
    if (req.method === 'POST' && path === AgentRoutes.session) {
      const key = this.hosts.get(body.host);
      const nonceHost = this.nonces.get(body.nonce);
      this.nonces.delete(body.nonce);
      if (!key || nonceHost !== body.host || !this.signedFor(body.host, body.nonce, body.signature, key)) {
        return error(401, 'bad-signature', 'challenge signature does not verify');
      }
      const token = randomBytes(16).toString('hex');
      this.sessions.set(token, body.host);
      return json(200, { protocol: PROTOCOL_VERSION, token, expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
    }
    if (req.method === 'GET' && path === AgentRoutes.manifest) {
      if (!sessionHost()) return error(401, 'unauthenticated', 'session token missing or unknown');
      if (!this.manifest) return json(204, undefined);
      const etag = manifestEtag(this.manifest.version);
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { etag });
        return void res.end();
      }
      return json(200, { protocol: PROTOCOL_VERSION, ...this.manifest }, { etag });
    }
    if (req.method === 'POST' && path === AgentRoutes.reports) {
      if (!sessionHost()) return error(401, 'unauthenticated', 'session token missing or unknown');
      if (!this.acceptReports) return error(503, 'unavailable', 'database is busy');
      const batch = ReportBatch.parse(body);
      let stored = 0;
      for (const report of batch.reports) {
        if (this.reports.some((r) => r.seq === report.seq)) continue;
        this.reports.push(report);
        stored += 1;
      }
      return json(200, { protocol: PROTOCOL_VERSION, ackedSeqs: batch.reports.map((r) => r.seq), stored });
    }
    return error(404, 'not-found', `no route ${req.method} ${path}`);
  }
}
