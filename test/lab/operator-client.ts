import type { z } from 'zod';
import type { Action } from '../../shared/src/protocol.js';
import type { ReleaseBundle } from '../../shared/src/release-statement.js';
import {
  EnrollmentTokenCreated,
  HostEvents,
  HostList,
  HostStatus,
  ManifestSummary,
  OperatorRoutes,
  type CreateEnrollmentTokenRequest,
  type HostEvent,
  type RegisterHostRequest,
} from '../../shared/src/operator-api.js';
import { HostDiff } from '../../shared/src/closure-api.js';
import { HostRebootSettings, TagRebootSettings, type SetRebootSettingsRequest } from '../../shared/src/reboot-settings.js';
import {
  Release,
  ReleaseDiffReport,
  RolloutPlanReport,
  RolloutRoutes,
  RolloutStatus,
  type CreateReleaseRequest,
  type RolloutAction,
  type RolloutSpecInput,
} from '../../shared/src/rollout-api.js';

export interface ApiResponse {
  status: number;
  body: unknown;
}

/** A non-2xx answer where the lab expected success; carries the controller's JSON error. */
export class OperatorApiError extends Error {
  override readonly name = 'OperatorApiError';
  constructor(
    readonly method: string,
    readonly path: string,
    readonly response: ApiResponse,
  ) {
    super(`${method} ${path} answered ${response.status}: ${JSON.stringify(response.body)}`);
  }
}

/** A small typed client of the operator API, for tests and the demo. */
export class OperatorClient {
  constructor(
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  /** Any request, raw: for tests of bad input. `body` strings are sent as they are. */
  async request(method: string, path: string, body?: unknown, options: { token?: string | null; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
    const token = options.token === undefined ? this.token : options.token;
    const headers: Record<string, string> = { ...options.headers };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await fetch(new URL(path, this.baseUrl), {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: keep the text, the caller's assertion will show it.
    }
    return { status: response.status, body: parsed };
  }

  private async call<S extends z.ZodType>(schema: S, method: string, path: string, body?: unknown): Promise<z.infer<S>> {
    const response = await this.request(method, path, body);
    if (response.status < 200 || response.status > 299) throw new OperatorApiError(method, path, response);
    const parsed = schema.safeParse(response.body);
    if (!parsed.success) throw new Error(`${method} ${path}: answer does not match the operator API schema: ${parsed.error.message}`);
    return parsed.data;
  }

  async hosts(): Promise<HostStatus[]> {
    return (await this.call(HostList, 'GET', OperatorRoutes.hosts)).hosts;
  }

  host(name: string): Promise<HostStatus> {
    return this.call(HostStatus, 'GET', OperatorRoutes.host(name));
  }

  setDesired(name: string, storePath: string, action: Action = 'safe-switch'): Promise<ManifestSummary> {
    return this.call(ManifestSummary, 'PUT', OperatorRoutes.desired(name), { storePath, action });
  }

  async events(name: string, afterId = 0): Promise<HostEvent[]> {
    return (await this.call(HostEvents, 'GET', `${OperatorRoutes.events(name)}?afterId=${afterId}&limit=1000`)).events;
  }

  createEnrollmentToken(request: Partial<CreateEnrollmentTokenRequest> = {}): Promise<EnrollmentTokenCreated> {
    return this.call(EnrollmentTokenCreated, 'POST', OperatorRoutes.enrollmentTokens, request);
  }

  registerHost(request: Pick<RegisterHostRequest, 'name' | 'publicKey'> & { tags?: string[] }): Promise<HostStatus> {
    return this.call(HostStatus, 'POST', OperatorRoutes.hosts, request);
  }

  // ---- Releases and rollouts -----------------------------------------------------------------

  /** Creates a release; `hosts` may be a map host → store path. */
  createRelease(request: Omit<CreateReleaseRequest, 'hosts' | 'description' | 'source'> & Partial<Pick<CreateReleaseRequest, 'description' | 'source'>> & { hosts: CreateReleaseRequest['hosts'] | Record<string, string> }): Promise<Release> {
    const hosts = Array.isArray(request.hosts) ? request.hosts : Object.entries(request.hosts).map(([host, storePath]) => ({ host, storePath }));
    return this.call(Release, 'POST', RolloutRoutes.releases, { ...request, hosts });
  }

  /** Publishes a CI-signed bundle (what `shoal release publish` sends); the only way in a two-key lab. */
  publishBundle(bundle: ReleaseBundle): Promise<Release> {
    return this.call(Release, 'POST', RolloutRoutes.releases, bundle);
  }

  /** The dry-run plan: which hosts go in which wave, without starting anything. */
  plan(spec: RolloutSpecInput): Promise<RolloutPlanReport> {
    return this.call(RolloutPlanReport, 'POST', RolloutRoutes.plan, spec);
  }

  /** A release against what its hosts run now: fleet diff, cache preflight, drifted hosts. */
  releaseDiff(name: string): Promise<ReleaseDiffReport> {
    return this.call(ReleaseDiffReport, 'GET', RolloutRoutes.releaseDiff(name));
  }

  /** What the host runs against its desired system (or `target`). */
  hostDiff(name: string, target?: string): Promise<HostDiff> {
    return this.call(HostDiff, 'GET', `${OperatorRoutes.diff(name)}${target ? `?target=${encodeURIComponent(target)}` : ''}`);
  }

  /** The host's own reboot policy and windows on the controller (shoal host set-reboot). */
  setHostReboot(name: string, settings: SetRebootSettingsRequest): Promise<HostRebootSettings> {
    return this.call(HostRebootSettings, 'PUT', OperatorRoutes.hostReboot(name), settings);
  }

  /** A tag's reboot policy, windows and reboot lock (shoal tag set-reboot). */
  setTagReboot(tag: string, settings: SetRebootSettingsRequest): Promise<TagRebootSettings> {
    return this.call(TagRebootSettings, 'PUT', OperatorRoutes.tagReboot(tag), settings);
  }

  startRollout(spec: RolloutSpecInput & { skipPreflight?: boolean }): Promise<RolloutStatus> {
    return this.call(RolloutStatus, 'POST', RolloutRoutes.rollouts, spec);
  }

  rollout(id: string): Promise<RolloutStatus> {
    return this.call(RolloutStatus, 'GET', RolloutRoutes.rollout(id));
  }

  /** The rollout's audit log, oldest first. */
  async rolloutEvents(id: string, afterId = 0): Promise<HostEvent[]> {
    return (await this.call(HostEvents, 'GET', `${RolloutRoutes.events(id)}?afterId=${afterId}&limit=5000`)).events;
  }

  /** approve, pause, resume, abort or rollback; answers the rollout's status after the action. */
  act(id: string, action: RolloutAction): Promise<RolloutStatus> {
    return this.call(RolloutStatus, 'POST', RolloutRoutes.action(id, action));
  }
}
