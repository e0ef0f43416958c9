import type * as z from 'zod';
import { httpFetch, type HttpAnswer, type HttpFetch } from './http-fetch.js';
import type { Ed25519 } from '../../shared/src/ed25519.js';
import { toBase64 } from '../../shared/src/keys.js';
import { SHOAL_VERSION } from '../../shared/src/version.js';
import {
  AgentRoutes,
  Challenge,
  challengeMessage,
  controllerAudience,
  EnrollResponse,
  ErrorBody,
  ManifestResponse,
  PROTOCOL_VERSION,
  RebootGrantAnswer,
  ReportAck,
  Session,
  type AgentWatermark,
  type Report,
} from '../../shared/src/protocol.js';
import { ControllerEndpoints, unavailableStatus } from './endpoints.js';
import { registerCommand, type Identity } from './identity.js';

/**
 * The agent's HTTP side of the contract. Expected failures (controller down, 4xx/5xx) come back
 * as values; the caller decides whether to retry. A 401 on an authenticated call means the
 * controller forgot the session (e.g. it restarted): authenticate again and retry once.
 */

export type CallError =
  | { kind: 'unreachable'; message: string }
  | { kind: 'http'; status: number; code: string; message: string }
  | { kind: 'protocol'; message: string };

export type Call<T> = { ok: true; value: T } | { ok: false; error: CallError };

export type ManifestFetch =
  | { kind: 'manifest'; response: ManifestResponse; etag: string | null }
  | { kind: 'not-modified' }
  | { kind: 'none' };

export interface ClientOptions {
  /** One controller, or several to fail over between (shared with the websocket). */
  baseUrl: string | ControllerEndpoints;
  host: string;
  identity: Identity;
  ed25519: Ed25519;
  fetch?: HttpFetch;
  requestTimeoutMs?: number;
  /** The highest version and floor accepted, told at every login so a restored controller continues above them. */
  watermark?: () => AgentWatermark;
}

export function describeCallError(error: CallError): string {
  switch (error.kind) {
    case 'unreachable':
      return `controller unreachable: ${error.message}`;
    case 'http':
      return `controller answered ${error.status} ${error.code}: ${error.message}`;
    case 'protocol':
      return `controller sent an unexpected answer: ${error.message}`;
  }
}

export class ControllerClient {
  private session: { token: string; expiresAtMs: number } | null = null;
  private readonly fetchImpl: HttpFetch;
  private readonly requestTimeoutMs: number;
  private readonly endpoints: ControllerEndpoints;

  constructor(private readonly options: ClientOptions) {
    this.fetchImpl = options.fetch ?? httpFetch;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.endpoints = typeof options.baseUrl === 'string' ? new ControllerEndpoints([options.baseUrl]) : options.baseUrl;
  }

  /** The websocket's welcome carries a session; HTTP calls reuse it instead of authenticating again. */
  useSession(session: Session): void {
    this.session = { token: session.token, expiresAtMs: Date.parse(session.expiresAt) };
  }

  async enroll(token: string): Promise<Call<EnrollResponse>> {
    const result = await this.request('POST', AgentRoutes.enroll, {
      body: { protocol: PROTOCOL_VERSION, host: this.options.host, publicKey: toBase64(this.options.identity.publicKey), token },
    });
    if (!result.ok) return result;
    return parse(EnrollResponse, result.value.body, 'enroll');
  }

  /** Challenge → signature → session token, both steps at one controller. */
  async authenticate(): Promise<Call<Session>> {
    // The key goes along so that a controller that lost this host can record it for adoption.
    const publicKey = toBase64(this.options.identity.publicKey);
    const base = this.endpoints.current;
    const challenge = await this.request('POST', AgentRoutes.challenge, { body: { protocol: PROTOCOL_VERSION, host: this.options.host, publicKey }, base });
    if (!challenge.ok) return this.withRegisterHint(challenge);
    const parsed = parse(Challenge, challenge.value.body, 'challenge');
    if (!parsed.ok) return parsed;
    const nonce = parsed.value.nonce;
    // The controller's origin is signed with the nonce, so the signature is worth nothing at any other controller.
    const signature = this.options.ed25519.sign(challengeMessage(this.options.host, nonce, controllerAudience(base)), this.options.identity.secretKey);
    const session = await this.request('POST', AgentRoutes.session, {
      body: { protocol: PROTOCOL_VERSION, host: this.options.host, nonce, signature: toBase64(signature), publicKey, watermark: this.options.watermark?.(), agentVersion: SHOAL_VERSION },
      base,
    });
    if (!session.ok) return this.withRegisterHint(session);
    const parsedSession = parse(Session, session.value.body, 'session');
    if (parsedSession.ok) this.useSession(parsedSession.value);
    return parsedSession;
  }

  /** An unknown host's failure carries the one fix an operator needs, in the form that command accepts. */
  private withRegisterHint<T>(failed: Call<T> & { ok: false }): Call<T> {
    if (failed.error.kind !== 'http' || failed.error.code !== 'unknown-host') return failed;
    const hint = `the controller does not know this host; register it there with: ${registerCommand(this.options.host, this.options.identity)} (or give the agent an enrollmentTokenFile)`;
    return { ok: false, error: { ...failed.error, message: `${failed.error.message}; ${hint}` } };
  }

  /** `waitSeconds` asks the controller to hold the answer until the manifest changes (a long-poll); `signal` abandons it. */
  async getManifest(options: { etag?: string | null; waitSeconds?: number; signal?: AbortSignal } = {}): Promise<Call<ManifestFetch>> {
    const query = options.waitSeconds ? `?waitSeconds=${Math.min(60, Math.max(1, Math.round(options.waitSeconds)))}` : '';
    const headers: Record<string, string> = options.etag ? { 'if-none-match': options.etag } : {};
    const timeoutMs = this.requestTimeoutMs + (options.waitSeconds ?? 0) * 1000;
    const result = await this.authed('GET', `${AgentRoutes.manifest}${query}`, { headers, timeoutMs, signal: options.signal });
    if (!result.ok) return result;
    const { status, body, etag } = result.value;
    if (status === 304) return { ok: true, value: { kind: 'not-modified' } };
    if (status === 204) return { ok: true, value: { kind: 'none' } };
    const parsed = parse(ManifestResponse, body, 'manifest');
    if (!parsed.ok) return parsed;
    return { ok: true, value: { kind: 'manifest', response: parsed.value, etag } };
  }

  async sendReports(reports: readonly Report[]): Promise<Call<ReportAck>> {
    const result = await this.authed('POST', AgentRoutes.reports, { body: { protocol: PROTOCOL_VERSION, reports } });
    if (!result.ok) return result;
    return parse(ReportAck, result.value.body, 'reports');
  }

  /** Asks for the fleet reboot lock before rebooting into (manifestVersion)'s system. */
  async requestRebootGrant(manifestVersion: number): Promise<Call<RebootGrantAnswer>> {
    const result = await this.authed('POST', AgentRoutes.rebootGrant, { body: { protocol: PROTOCOL_VERSION, manifestVersion } });
    if (!result.ok) return result;
    return parse(RebootGrantAnswer, result.value.body, 'reboot grant');
  }

  private async authed(method: string, path: string, init: RequestInit): Promise<Call<Response_>> {
    for (let attempt = 0; attempt < 2; attempt++) {
      // Renew a little before expiry rather than eat a 401 on every hour boundary.
      if (!this.session || this.session.expiresAtMs - Date.now() < 30_000) {
        const session = await this.authenticate();
        if (!session.ok) return session;
      }
      const result = await this.request(method, path, { ...init, token: this.session!.token });
      if (!result.ok && result.error.kind === 'http' && result.error.status === 401 && attempt === 0) {
        this.session = null;
        continue;
      }
      return result;
    }
    throw new Error('unreachable: the retry loop always returns');
  }

  private async request(method: string, path: string, init: RequestInit): Promise<Call<Response_>> {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    let body: string | undefined;
    if (init.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.body);
    }
    const base = init.base ?? this.endpoints.current;
    let response: HttpAnswer;
    try {
      response = await this.fetchImpl(new URL(path, base), {
        method,
        headers,
        body,
        signal: init.signal
          ? AbortSignal.any([init.signal, AbortSignal.timeout(init.timeoutMs ?? this.requestTimeoutMs)])
          : AbortSignal.timeout(init.timeoutMs ?? this.requestTimeoutMs),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const message = cause?.code ?? cause?.message ?? (error as Error).message;
      this.endpoints.failed(base, `${method} ${path}: ${message}`);
      return { ok: false, error: { kind: 'unreachable', message: `${method} ${path}: ${message}` } };
    }
    if (unavailableStatus(response.status)) this.endpoints.failed(base, `${method} ${path}: HTTP ${response.status}`);
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      return { ok: false, error: { kind: 'unreachable', message: `${method} ${path}: reading the answer: ${(error as Error).message}` } };
    }
    let json: unknown = null;
    if (text.length > 0) {
      try {
        json = JSON.parse(text);
      } catch {
        if (response.ok) return { ok: false, error: { kind: 'protocol', message: `${method} ${path}: answer is not JSON` } };
      }
    }
    if (!response.ok && response.status !== 304) {
      const error = ErrorBody.safeParse(json);
      return {
        ok: false,
        error: {
          kind: 'http',
          status: response.status,
          code: error.success ? error.data.error.code : `http-${response.status}`,
          message: error.success ? error.data.error.message : text.slice(0, 300) || response.statusText,
        },
      };
    }
    return { ok: true, value: { status: response.status, body: json, etag: response.headers.get('etag') } };
  }
}

interface RequestInit {
  /** The controller to ask; default the current one. */
  base?: string;
  body?: unknown;
  headers?: Record<string, string>;
  token?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Response_ {
  status: number;
  body: unknown;
  etag: string | null;
}

function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): Call<T> {
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0]!;
  return { ok: false, error: { kind: 'protocol', message: `${what}: ${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}` } };
}
