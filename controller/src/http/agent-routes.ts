import type { Context } from 'hono';
import { Hono } from 'hono';
import { z } from 'zod';
import {
  ChallengeRequest,
  EnrollRequest,
  PROTOCOL_VERSION,
  RebootGrantRequest,
  ReportBatch,
  SessionRequest,
  manifestEtag,
  type Challenge,
  type EnrollResponse,
  type ManifestResponse,
  type ReportAck,
  type Session,
} from '../../../shared/src/protocol.js';
import { HEALTH_TRANSITION_PHASES, TERMINAL_PHASES } from '../../../shared/src/phases.js';
import { expectedAudience, verifyHostProof } from '../auth/host-signature.js';
import { iso } from '../clock.js';
import type { ManifestRow } from '../db/schema.js';
import type { ControllerDeps } from '../deps.js';
import { recordAgentVersion } from '../hosts/agent-version.js';
import { enrollHost } from '../hosts/enrollment.js';
import { afterLogin, unknownHostLogin } from '../hosts/login.js';
import { hostExists } from '../hosts/lookup.js';
import { requestRebootGrant } from '../hosts/reboot-grants.js';
import type { PublishedManifest } from '../manifests/bus.js';
import { latestManifest, latestManifestVersion, published } from '../manifests/issue.js';
import { reportWriter } from '../reports/store.js';
import { recordReports } from '../rollouts/report.js';
import { reportTicks } from '../rollouts/report-ticks.js';
import { foreignKeyViolation } from '../db/store-errors.js';
import type { Store } from '../db/store.js';
import { ApiError } from './errors.js';
import { bearerToken, limitBody, readBody, readJson, requestSource } from './request.js';

export const MAX_WAIT_SECONDS = 60;

const ManifestQuery = z.object({
  waitSeconds: z.coerce.number().int().min(0).max(MAX_WAIT_SECONDS).default(0),
  host: z.string().optional(),
});

type AgentEnv = { Variables: { host: string } };

function etagMatches(header: string | undefined, version: number): boolean {
  if (!header) return false;
  const wanted = manifestEtag(version);
  return header.split(',').some((tag) => {
    const trimmed = tag.trim();
    return trimmed === '*' || trimmed.replace(/^W\//, '') === wanted;
  });
}

function manifestResponse(c: Context, manifest: PublishedManifest): Response {
  const body: ManifestResponse = { protocol: PROTOCOL_VERSION, version: manifest.version, envelope: manifest.envelope };
  return c.json(body, 200, { ETag: manifestEtag(manifest.version), 'Cache-Control': 'no-store' });
}

/** The host's desired manifest; only its version when the agent's If-None-Match names it (held); undefined when there is none. */
type Latest = ManifestRow | { held: number } | undefined;

/**
 * The version is read first and the whole manifest only when the agent does not hold it: most
 * polls are unchanged, and their answer (304) needs no envelope.
 */
async function latestUnlessHeld(store: Store, host: string, ifNoneMatch: string | undefined): Promise<Latest> {
  if (ifNoneMatch !== undefined) {
    const version = await latestManifestVersion(store, host);
    if (version === undefined) return undefined;
    if (etagMatches(ifNoneMatch, version)) return { held: version };
  }
  return latestManifest(store, host);
}

/** The host's desired manifest, unless the agent has it already (304) or there is none (204). */
function manifestAnswer(c: Context, latest: Latest, ifNoneMatch: string | undefined): Response {
  if (latest === undefined) return c.body(null, 204);
  if ('held' in latest) return c.body(null, 304, { ETag: manifestEtag(latest.held) });
  if (!etagMatches(ifNoneMatch, latest.version)) return manifestResponse(c, published(latest));
  return c.body(null, 304, { ETag: manifestEtag(latest.version) });
}

/**
 * The body limit for reports, checked from a declared Content-Length without touching the body:
 * hono's bodyLimit first asks for the body stream, which makes node-server build a full web
 * Request (abort signal, web stream) for every report instead of reading the socket directly.
 * A body without a length (chunked) still goes through bodyLimit, which counts what it reads.
 */
function limitReportBody(maxBytes: number) {
  const counted = limitBody(maxBytes);
  return async (c: Context, next: () => Promise<void>) => {
    const length = c.req.header('content-length');
    if (length === undefined || c.req.header('transfer-encoding') !== undefined) return counted(c, next);
    if (Number.parseInt(length, 10) > maxBytes) throw new ApiError(413, 'body-too-large', `request body exceeds ${maxBytes} bytes`);
    await next();
  };
}

export function agentRoutes(deps: ControllerDeps, limits: { maxBodyBytes: number; maxReportBodyBytes: number }) {
  const { store, clock, sessions, challenges, presence, bus } = deps;
  const app = new Hono<AgentEnv>();
  const scheduleTick = reportTicks((id) => deps.rollouts.wake(id), deps.logger);
  // Requests arriving within a millisecond of each other share one commit; each is answered only
  // after it (an ack still means stored).
  const reports = reportWriter(deps.store, clock, deps.logger, (stored, now) => recordReports(deps.store, stored, now), { windowMs: 1 });

  /** A session speaks only for its own host: any host it names must be that host. */
  const requireSession = async (c: Context<AgentEnv>, next: () => Promise<void>) => {
    const token = bearerToken(c);
    if (token === null) throw new ApiError(401, 'missing-session', 'agent API needs "Authorization: Bearer <session>"; authenticate via /v1/agent/challenge');
    const host = token ? await sessions.hostOf(token) : null;
    if (!host) throw new ApiError(401, 'invalid-session', 'session is unknown or expired; authenticate again');
    const named = c.req.query('host');
    if (named !== undefined && named !== host) {
      throw new ApiError(403, 'wrong-host', `session belongs to ${JSON.stringify(host)}, not ${JSON.stringify(named)}`);
    }
    c.set('host', host);
    await next();
  };

  app.post('/enroll', limitBody(limits.maxBodyBytes), async (c) => {
    const request = await readBody(c, EnrollRequest);
    const outcome = await enrollHost(store, clock, { host: request.host, publicKey: request.publicKey, token: request.token });
    if (!outcome.ok) throw new ApiError(outcome.reason === 'host-key-conflict' ? 409 : 401, outcome.reason, outcome.message);
    if (outcome.created) deps.logger.info({ host: request.host }, 'host enrolled');
    return c.json({ protocol: PROTOCOL_VERSION, host: request.host } satisfies EnrollResponse, outcome.created ? 201 : 200);
  });

  app.post('/challenge', limitBody(limits.maxBodyBytes), async (c) => {
    const request = await readBody(c, ChallengeRequest);
    // An unknown host that presents its key gets a nonce too: its signed login is recorded for adoption.
    if (request.publicKey === undefined && !(await hostExists(store, request.host))) {
      throw new ApiError(404, 'unknown-host', `no host named ${JSON.stringify(request.host)}; enroll first`);
    }
    const source = requestSource(c);
    const issued = await challenges.issue(request.host, source);
    if (!issued.ok) {
      deps.metrics.admissionRefused('challenge', issued.scope);
      // Agents back off and retry; a second is ample, as a real handshake holds its nonce for milliseconds.
      c.header('Retry-After', '1');
      if (issued.scope === 'address') {
        throw new ApiError(429, 'too-many-pending-challenges', `${issued.limit} challenges from your address are already pending; answer them or wait until they expire`);
      }
      throw new ApiError(503, 'controller-busy', `the controller already holds ${issued.limit} pending challenges; retry shortly`);
    }
    return c.json({ protocol: PROTOCOL_VERSION, nonce: issued.nonce, expiresAt: iso(issued.expiresAt) } satisfies Challenge);
  });

  app.post('/session', limitBody(limits.maxBodyBytes), async (c) => {
    const request = await readBody(c, SessionRequest);
    const audience = expectedAudience(deps.audience, c.req.url);
    const proof = await verifyHostProof(store, challenges, request.host, request.nonce, request.signature, audience);
    if (!proof.ok) {
      if (proof.reason !== 'unknown-host') throw new ApiError(401, proof.reason, proof.message);
      throw new ApiError(404, 'unknown-host', await unknownHostLogin(deps, request.host, request.nonce, request.signature, audience, request));
    }
    await afterLogin(deps, request.host, request);
    const session = await sessions.create(request.host);
    presence.seen(request.host);
    await recordAgentVersion(store, request.host, request.agentVersion);
    return c.json({ protocol: PROTOCOL_VERSION, token: session.token, expiresAt: iso(session.expiresAt) } satisfies Session);
  });

  app.get('/manifest', requireSession, async (c) => {
    const host = c.get('host');
    const query = ManifestQuery.parse(c.req.query());
    presence.polled(host);
    const ifNoneMatch = c.req.header('if-none-match');
    if (query.waitSeconds <= 0) return manifestAnswer(c, await latestUnlessHeld(store, host, ifNoneMatch), ifNoneMatch);
    // The waiter is registered before the read: a manifest committed from now on wakes it, and the
    // read sees every one committed before. So none committed while the read runs is missed.
    const done = new AbortController();
    const waiting = bus.waitFor(host, query.waitSeconds * 1000, AbortSignal.any([c.req.raw.signal, done.signal]));
    let latest: Latest;
    try {
      latest = await latestUnlessHeld(store, host, ifNoneMatch);
    } catch (error) {
      done.abort();
      throw error;
    }
    if (latest !== undefined && !('held' in latest)) {
      done.abort();
      // Published while the read ran: whichever is newer.
      const pushed = await waiting;
      return manifestResponse(c, pushed && pushed.version > latest.version ? pushed : published(latest));
    }
    const release = presence.holdPoll(host);
    let next: Awaited<typeof waiting>;
    try {
      next = await waiting;
    } finally {
      release();
      presence.polled(host);
    }
    if (next) return manifestResponse(c, next);
    return manifestAnswer(c, latest, ifNoneMatch);
  });

  app.post('/reboot-grant', requireSession, limitBody(limits.maxBodyBytes), async (c) => {
    const host = c.get('host');
    const request = await readBody(c, RebootGrantRequest);
    const answer = await requestRebootGrant(store, clock, deps.rebootLock, host, request.manifestVersion);
    deps.logger.info({ host, manifestVersion: request.manifestVersion, granted: answer.granted, reason: answer.reason || undefined }, answer.granted ? 'reboot granted' : 'reboot not granted yet');
    presence.seen(host);
    return c.json(answer);
  });

  app.post('/reports', requireSession, limitReportBody(limits.maxReportBodyBytes), async (c) => {
    const host = c.get('host');
    const raw = await readJson(c);
    const claimed = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>).host : undefined;
    if (claimed !== undefined && claimed !== host) {
      throw new ApiError(403, 'wrong-host', `session belongs to ${JSON.stringify(host)}; it cannot report as ${JSON.stringify(claimed)}`);
    }
    const batch = await readBody(c, ReportBatch, raw);
    const outcome = await reports.store(host, batch.reports).catch((error: unknown) => {
      // The host was removed after its session was checked (another replica may still have had it cached):
      // its reports have nowhere to go, and its session is no longer valid.
      if (foreignKeyViolation(error)) throw new ApiError(401, 'invalid-session', `host ${JSON.stringify(host)} was removed; its session is no longer valid`);
      throw error;
    });
    // Only a host finishing (a terminal phase) or degrading during its wave can move a rollout on;
    // earlier phases were recorded above, in the storing transaction, and deadlines are the rollout timer's job.
    if (batch.reports.some((report) => TERMINAL_PHASES.has(report.phase) || HEALTH_TRANSITION_PHASES.has(report.phase))) {
      for (const rolloutId of outcome.rollouts) scheduleTick(rolloutId);
    }
    if (outcome.seenAt !== null) presence.seenStored(host, outcome.seenAt);
    else presence.seen(host);
    return c.json({ protocol: PROTOCOL_VERSION, ackedSeqs: outcome.ackedSeqs, stored: outcome.stored } satisfies ReportAck);
  });

  return app;
}
