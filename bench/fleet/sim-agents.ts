import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { Agent, request } from 'node:http';
import { connect as netConnect } from 'node:net';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { nodeEd25519, tweetnaclEd25519, type Ed25519 } from '../../shared/src/ed25519.js';
import { parsePublicKey, type NamedPublicKey } from '../../shared/src/keys.js';
import type { FleetTrust } from './protocol.js';
import { AgentRoutes, PROTOCOL_VERSION, ServerMessage, challengeMessage, controllerAudience, manifestEtag } from '../../shared/src/protocol.js';
import { verifyManifest } from '../../agent/src/verify.js';
import { RawHttpClient } from './raw-http.js';
import { wallMs } from '../lib/stats.js';
import type { PollResult, ReportResult, StormResult, VerifyResult } from './protocol.js';

interface SimHost {
  name: string;
  /** The controller (replica) it talks to; its logins are signed for this origin. */
  url: string;
  /** The loopback address it connects from (spreadSources), or null for the default. */
  source: string | null;
  privateKey: KeyObject;
  publicKeyBase64: string;
  ws: WebSocket | null;
  session: string | null;
  manifest: { version: number; envelope: unknown; receivedAt: number } | null;
  seq: number;
}

/** Runs `task` over items with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!);
  });
  await Promise.all(runners);
}

/**
 * Simulated agents that speak the real protocol: their own Ed25519 keys, enrollment with a token,
 * websocket challenge auth, manifests verified by the agent's own verifyManifest, and
 * reports over HTTP with the session the welcome carried.
 *
 * Challenge signing uses Node's native Ed25519 (the same RFC 8032 signature tweetnacl would make,
 * ~150x faster): 10,000 hosts simulated on one core could not otherwise reconnect in reasonable time,
 * while each real host signs one challenge on a core of its own.
 */
/** Manifests per generator also verified with tweetnacl. */
const TWEETNACL_SAMPLE = 100;

export class SimAgents {
  private readonly hosts: SimHost[];
  private readonly trustedReleaseKeys: NamedPublicKey[];
  private readonly trustedControllerKeys: NamedPublicKey[];
  private readonly http = new Agent({ keepAlive: true, maxSockets: 256 });
  private readonly reportClients = new Map<string, RawHttpClient>();
  private manifestWaiter: (() => void) | null = null;
  private baselineVersions = new Map<string, number>();

  constructor(
    hosts: ReadonlyArray<{ name: string; url: string }>,
    trust: FleetTrust,
    spreadSources = false,
  ) {
    this.trustedReleaseKeys = [parsePublicKey(trust.releaseKey)];
    this.trustedControllerKeys = [parsePublicKey(trust.controllerKey)];
    this.hosts = hosts.map(({ name, url }) => {
      const pair = generateKeyPairSync('ed25519');
      const jwk = pair.publicKey.export({ format: 'jwk' });
      const index = Number(/(\d+)$/.exec(name)?.[1] ?? 0);
      return {
        name,
        url,
        source: spreadSources ? `127.1.${Math.floor(index / 250)}.${(index % 250) + 1}` : null,
        privateKey: pair.privateKey,
        publicKeyBase64: Buffer.from(jwk.x!, 'base64url').toString('base64'),
        ws: null,
        session: null,
        manifest: null,
        seq: 0,
      };
    });
  }

  async enroll(token: string, concurrency: number): Promise<void> {
    await pool(this.hosts, concurrency, async (host) => {
      const { status, body } = await this.post(host.url, AgentRoutes.enroll, { protocol: PROTOCOL_VERSION, host: host.name, publicKey: host.publicKeyBase64, token });
      if (status !== 201 && status !== 200) throw new Error(`enrolling ${host.name}: ${status} ${body.slice(0, 300)}`);
    });
  }

  /** Opens every host's websocket and resolves once each one was welcomed. */
  async connect(concurrency: number): Promise<number> {
    let failed = 0;
    await pool(this.hosts, concurrency, async (host) => {
      try {
        await this.connectOne(host);
      } catch {
        failed += 1;
      }
    });
    return failed;
  }

  /**
   * Every host reconnects at the same instant (a controller restart, a network blip) and, like the
   * real agent, retries any failure before the welcome (a 4429 refusal, a reset from a full accept
   * queue) after its backoff: full jitter from 1 s, doubling.
   */
  async storm(): Promise<StormResult> {
    let refused = 0;
    let errors = 0;
    let failed = 0;
    const started = wallMs();
    await Promise.all(
      this.hosts.map(async (host) => {
        for (let attempt = 0; ; attempt++) {
          try {
            await this.connectOne(host);
            return;
          } catch (error) {
            if (attempt > 10) {
              failed += 1;
              return;
            }
            if (String((error as Error).message).includes('closed 4429')) refused += 1;
            else errors += 1;
            await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(30_000, 1000 * 2 ** attempt)));
          }
        }
      }),
    );
    return { elapsedMs: wallMs() - started, refused, errors, failed };
  }

  /** Closes every host's socket and waits until each is closed. */
  async disconnect(): Promise<void> {
    await Promise.all(
      this.hosts.map(
        (host) =>
          new Promise<void>((resolve) => {
            const ws = host.ws;
            host.ws = null;
            if (!ws || ws.readyState === WebSocket.CLOSED) return resolve();
            ws.once('close', () => resolve());
            ws.terminate();
          }),
      ),
    );
  }

  private connectOne(host: SimHost): Promise<void> {
    const wsUrl = `${host.url.replace(/^http/, 'ws')}${AgentRoutes.websocket}`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { perMessageDeflate: false, ...(host.source ? { localAddress: host.source } : {}) });
      host.ws = ws;
      let welcomed = false;
      const timer = setTimeout(() => reject(new Error(`${host.name}: no welcome within 60 s`)), 60_000);
      ws.on('error', (error) => {
        if (!welcomed) {
          clearTimeout(timer);
          reject(error);
        }
      });
      ws.on('close', (code) => {
        if (!welcomed) {
          clearTimeout(timer);
          reject(new Error(`${host.name}: closed ${code} before welcome`));
        }
      });
      ws.on('message', (data) => {
        const receivedAt = wallMs();
        const parsed = ServerMessage.safeParse(JSON.parse(data.toString()));
        if (!parsed.success) return;
        const message = parsed.data;
        if (message.type === 'challenge') {
          const signature = sign(null, challengeMessage(host.name, message.nonce, controllerAudience(host.url)), host.privateKey).toString('base64');
          ws.send(JSON.stringify({ type: 'auth', protocol: PROTOCOL_VERSION, host: host.name, signature }));
        } else if (message.type === 'welcome') {
          welcomed = true;
          host.session = message.session.token;
          clearTimeout(timer);
          resolve();
        } else if (message.type === 'manifest') {
          host.manifest = { version: message.version, envelope: message.envelope, receivedAt };
          this.manifestWaiter?.();
        }
      });
    });
  }

  /** Remembers the versions held now; awaitManifests waits until every host holds a newer one. */
  markBaseline(): void {
    this.baselineVersions = new Map(this.hosts.map((h) => [h.name, h.manifest?.version ?? 0]));
  }

  /** Waits until every host (after the first `skip`) holds a manifest newer than its baseline. */
  async awaitManifests(timeoutMs: number, skip = 0): Promise<number[]> {
    const hosts = this.hosts.slice(skip);
    const pending = () => hosts.filter((h) => (h.manifest?.version ?? 0) <= (this.baselineVersions.get(h.name) ?? 0)).length;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.manifestWaiter = null;
        reject(new Error(`${pending()} of ${hosts.length} hosts had no new manifest after ${timeoutMs} ms`));
      }, timeoutMs);
      let left = pending();
      const check = () => {
        left -= 1;
        if (left > 0 && left % 500 !== 0) return;
        left = pending();
        if (left === 0) {
          clearTimeout(timer);
          this.manifestWaiter = null;
          resolve();
        }
      };
      this.manifestWaiter = check;
      if (left === 0) check();
    });
    return hosts.map((h) => h.manifest!.receivedAt);
  }

  /**
   * Verifies every host's manifest as the agent does (verifyManifest with Node's Ed25519), timing
   * each one, and a sample with tweetnacl for comparison (10,000 of those took minutes here). In
   * slices, so websocket pings keep being answered.
   */
  async verify(): Promise<VerifyResult> {
    const verifyMs: number[] = [];
    const tweetnaclMs: number[] = [];
    const invalid: string[] = [];
    const sampleEvery = Math.max(1, Math.floor(this.hosts.length / TWEETNACL_SAMPLE));
    for (let i = 0; i < this.hosts.length; i++) {
      if (i % 20 === 0) await yieldToLoop();
      const host = this.hosts[i]!;
      const timed = this.verifyOne(host, nodeEd25519);
      verifyMs.push(timed.ms);
      if (timed.problem) invalid.push(`${host.name}: ${timed.problem}`);
      if (i % sampleEvery === 0) tweetnaclMs.push(this.verifyOne(host, tweetnaclEd25519).ms);
    }
    return { verifyMs, tweetnaclMs, invalid };
  }

  private verifyOne(host: SimHost, ed25519: Ed25519): { ms: number; problem: string | null } {
    const started = performance.now();
    const outcome = verifyManifest(host.manifest!.envelope, {
      host: host.name,
      trustedControllerKeys: this.trustedControllerKeys,
      trustedReleaseKeys: this.trustedReleaseKeys,
      highestVersion: this.baselineVersions.get(host.name) ?? 0,
      highestStorePath: null,
      highestFloor: 0,
      stateLost: false,
      maxClockSkewMs: 300_000,
      maxManifestLifetimeMs: 7 * 24 * 3600_000,
      now: new Date(),
      ed25519,
    });
    const ms = performance.now() - started;
    return { ms, problem: outcome.outcome === 'valid' ? null : `${outcome.outcome}${'reason' in outcome ? ` ${outcome.reason}` : ''}` };
  }

  /** Each host posts one report per phase, in order, one request each (as an agent's outbox drains). */
  async report(phases: readonly string[], concurrency: number, skip = 0): Promise<ReportResult> {
    const errors: string[] = [];
    let stored = 0;
    let sent = 0;
    const startedAt = wallMs();
    await pool(this.hosts.slice(skip), concurrency, async (host) => {
      const storePath = host.manifest ? (JSON.parse(Buffer.from((host.manifest.envelope as { payload: string }).payload, 'base64').toString('utf8')) as { storePath: string }).storePath : null;
      for (const phase of phases) {
        host.seq += 1;
        const report = {
          seq: host.seq,
          at: new Date().toISOString(),
          phase,
          manifestVersion: host.manifest?.version ?? null,
          storePath,
          currentSystem: phase === 'healthy' ? storePath : null,
          detail: {},
        };
        sent += 1;
        const { status, body } = await this.reportClient(host.url, concurrency).post(AgentRoutes.reports, JSON.stringify({ protocol: PROTOCOL_VERSION, reports: [report] }), {
          Authorization: `Bearer ${host.session!}`,
        });
        if (status !== 200) {
          if (errors.length < 5) errors.push(`${host.name} seq ${report.seq}: ${status} ${body.slice(0, 200)}`);
          continue;
        }
        stored += (JSON.parse(body) as { stored: number }).stored;
      }
    });
    return { startedAt, finishedAt: wallMs(), sent, stored, errors };
  }

  /**
   * Unchanged polls: keep-alive connections, one request in flight each, If-None-Match set to the
   * version the host holds. A raw socket client, so the load generator costs less CPU than the
   * server it measures (node:http's client would be the bottleneck on two cores).
   */
  async poll(durationMs: number, connections: number, hostCount: number, startAt: number): Promise<PollResult> {
    const hosts = this.hosts.slice(0, hostCount).filter((h) => h.session !== null);
    if (hosts.length === 0) throw new Error('no host has a session to poll with');
    const byStatus: Record<string, number> = {};
    const latencies: number[] = [];
    const errors: string[] = [];
    let requests = 0;
    const delay = startAt - wallMs();
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const started = performance.now();
    const deadline = started + durationMs;
    await Promise.all(
      Array.from({ length: connections }, (_, index) => {
        const host = hosts[index % hosts.length]!;
        const { hostname, port } = new URL(host.url);
        const etag = host.manifest ? manifestEtag(host.manifest.version) : '"v0"';
        const bytes = Buffer.from(
          `GET ${AgentRoutes.manifest} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Bearer ${host.session}\r\nIf-None-Match: ${etag}\r\n\r\n`,
        );
        return new Promise<void>((resolve) => {
          const socket = netConnect({ host: hostname, port: Number(port), noDelay: true });
          let buffer = '';
          let sentAt = 0;
          const send = () => {
            if (performance.now() >= deadline) {
              socket.end();
              return resolve();
            }
            sentAt = performance.now();
            socket.write(bytes);
          };
          socket.setEncoding('latin1');
          socket.on('connect', send);
          socket.on('error', (error) => {
            if (errors.length < 5) errors.push(error.message);
            resolve();
          });
          socket.on('close', () => resolve());
          socket.on('data', (chunk: string) => {
            buffer += chunk;
            for (;;) {
              const end = buffer.indexOf('\r\n\r\n');
              if (end < 0) return;
              const head = buffer.slice(0, end);
              const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
              if (buffer.length < end + 4 + length) return;
              buffer = buffer.slice(end + 4 + length);
              const status = head.slice(9, 12);
              byStatus[status] = (byStatus[status] ?? 0) + 1;
              requests += 1;
              // Every latency would be millions of numbers; every 8th is plenty for a p99.
              if ((requests & 7) === 0) latencies.push(performance.now() - sentAt);
              send();
            }
          });
        });
      }),
    );
    return { requests, byStatus, latenciesMs: latencies, elapsedMs: performance.now() - started, errors };
  }

  closeAll(): void {
    for (const host of this.hosts) host.ws?.terminate();
    this.http.destroy();
    for (const client of this.reportClients.values()) client.close();
  }

  /** Reports go through raw keep-alive sockets (raw-http.ts): node:http's client would be the bottleneck. */
  private reportClient(url: string, sockets: number): RawHttpClient {
    let client = this.reportClients.get(url);
    if (!client) this.reportClients.set(url, (client = new RawHttpClient(url, sockets)));
    return client;
  }

  private post(url: string, path: string, body: unknown, session?: string): Promise<{ status: number; body: string }> {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        `${url}${path}`,
        {
          method: 'POST',
          agent: this.http,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
            ...(session ? { authorization: `Bearer ${session}` } : {}),
          },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }
}
