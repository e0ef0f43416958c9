import { and, asc, eq, gt } from 'drizzle-orm';
import { Hono } from 'hono';
import { z } from 'zod';
import {
  CreateEnrollmentTokenRequest,
  RegisterHostRequest,
  RekeyHostRequest,
  type EnrollmentTokenList,
  type HostRemoved,
  type TokenRevoked,
  SetDesiredRequest,
  type EnrollmentTokenCreated,
  type EventKind,
  type HostEvents,
  type HostList,
} from '../../../shared/src/operator-api.js';
import { StorePath } from '../../../shared/src/protocol.js';
import { iso } from '../clock.js';
import { hostDiffFor } from '../closure-diff/host-query.js';
import type { ControllerDeps } from '../deps.js';
import { createEnrollmentToken, listEnrollmentTokens, registerHost, revokeEnrollmentToken } from '../hosts/enrollment.js';
import { rekeyHost, removeHost } from '../hosts/lifecycle.js';
import { setHostPaused } from '../hosts/pause.js';
import { hostExists } from '../hosts/lookup.js';
import { hostStatus, listHostStatuses } from '../hosts/status.js';
import { issueManifest, toSummary } from '../manifests/issue.js';
import { ApiError } from './errors.js';
import { operatorGuard, type OperatorEnv } from './operator-auth.js';
import { readBody } from './request.js';

const EventQuery = z.object({
  afterId: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

function unknownHost(name: string): ApiError {
  return new ApiError(404, 'unknown-host', `no host named ${JSON.stringify(name)}`);
}

export function operatorRoutes(deps: ControllerDeps, maxBodyBytes: number) {
  const { store, clock, presence } = deps;
  const app = new Hono<OperatorEnv>();

  const guard = operatorGuard(deps.store, maxBodyBytes);
  // Explicit paths, not '*': this app is mounted at /v1 beside the agent routes and must not guard them.
  for (const path of ['/hosts', '/hosts/*', '/enrollment-tokens', '/enrollment-tokens/*']) app.use(path, ...guard);

  app.get('/hosts', async (c) => c.json({ hosts: await listHostStatuses(store, presence) } satisfies HostList));

  app.post('/hosts', async (c) => {
    const request = await readBody(c, RegisterHostRequest);
    const outcome = await registerHost(store, clock, {
      name: request.name,
      publicKey: request.publicKey,
      tags: request.tags,
      actor: `operator:${c.get('operator').name}`,
    });
    if (!outcome.ok) throw new ApiError(409, outcome.reason, outcome.message);
    return c.json(await hostStatus(store, presence, request.name), outcome.created ? 201 : 200);
  });

  app.get('/hosts/:name', async (c) => {
    const name = c.req.param('name');
    const status = await hostStatus(store, presence, name);
    if (!status) throw unknownHost(name);
    return c.json(status);
  });

  /** What the host runs against its desired system (or ?target=PATH), read from the binary cache. */
  app.get('/hosts/:name/diff', async (c) => {
    const target = c.req.query('target');
    const parsed = target === undefined ? undefined : StorePath.safeParse(target);
    if (parsed && !parsed.success) throw new ApiError(400, 'invalid-request', `target: ${parsed.error.issues[0]?.message}`);
    const outcome = await hostDiffFor(deps, c.req.param('name'), parsed?.data);
    if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message);
    return c.json(outcome.diff);
  });

  app.delete('/hosts/:name', async (c) => {
    const name = c.req.param('name');
    const operator = c.get('operator').name;
    const outcome = await removeHost(store, clock, name, `operator:${operator}`);
    if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message);
    await deps.sessions.revokeHost(name);
    deps.logger.info({ host: name, operator }, 'host removed');
    return c.json({ removed: name } satisfies HostRemoved);
  });

  app.post('/hosts/:name/rekey', async (c) => {
    const name = c.req.param('name');
    if (!(await hostExists(store, name))) throw unknownHost(name);
    const request = await readBody(c, RekeyHostRequest);
    const operator = c.get('operator').name;
    const outcome = await rekeyHost(store, clock, name, request.publicKey, `operator:${operator}`);
    if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message);
    if (outcome.changed) {
      await deps.sessions.revokeHost(name);
      deps.logger.info({ host: name, operator, fingerprint: outcome.fingerprint }, 'host re-keyed');
    }
    return c.json(await hostStatus(store, presence, name));
  });

  app.put('/hosts/:name/desired', async (c) => {
    const name = c.req.param('name');
    // Unknown host before body validation: "no such host" is the more useful answer.
    if (!(await hostExists(store, name))) throw unknownHost(name);
    const request = await readBody(c, SetDesiredRequest);
    const outcome = await issueManifest(
      deps,
      { host: name, storePath: request.storePath, action: request.action, rolloutId: null },
      { kind: 'desired-set', actor: `operator:${c.get('operator').name}` },
      { force: request.force },
    );
    if (!outcome.ok) {
      if (outcome.reason === 'unknown-host') throw unknownHost(name);
      if (outcome.reason === 'host-paused') throw new ApiError(409, 'host-paused', outcome.message);
      // Two-key mode: only a CI-signed statement (a published release) can authorise a system.
      throw new ApiError(409, 'no-release-statement', outcome.message);
    }
    return c.json(toSummary(outcome.manifest));
  });

  for (const [verb, paused] of [['pause', true], ['resume', false]] as const) {
    app.post(`/hosts/:name/${verb}`, async (c) => {
      const name = c.req.param('name');
      const operator = c.get('operator').name;
      const outcome = await setHostPaused(deps, name, paused, `operator:${operator}`);
      if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message);
      if (outcome.changed) deps.logger.info({ host: name, operator }, paused ? 'host paused' : 'host resumed');
      return c.json(await hostStatus(store, presence, name));
    });
  }

  app.get('/hosts/:name/events', async (c) => {
    const name = c.req.param('name');
    const query = EventQuery.parse(c.req.query());
    if (!(await hostExists(store, name))) throw unknownHost(name);
    const { events } = deps.store.t;
    const rows = await deps.store.q
      .select()
      .from(events)
      .where(and(eq(events.host, name), gt(events.id, query.afterId)))
      .orderBy(asc(events.id))
      .limit(query.limit);
    const body: HostEvents = {
      events: rows.map((row) => ({ id: row.id, host: name, at: iso(row.at), kind: row.kind as EventKind, actor: row.actor, data: row.data })),
    };
    return c.json(body);
  });

  app.post('/enrollment-tokens', async (c) => {
    const request = await readBody(c, CreateEnrollmentTokenRequest);
    const created = await createEnrollmentToken(store, clock, {
      ttlMs: request.ttlSeconds * 1000,
      maxUses: request.maxUses,
      tags: request.tags,
    });
    deps.logger.info({ tokenId: created.id, operator: c.get('operator').name }, 'enrollment token created');
    const body: EnrollmentTokenCreated = { id: created.id, token: created.token, expiresAt: iso(created.expiresAt), maxUses: created.maxUses };
    return c.json(body, 201);
  });

  app.get('/enrollment-tokens', async (c) => c.json({ tokens: await listEnrollmentTokens(store, clock) } satisfies EnrollmentTokenList));

  app.delete('/enrollment-tokens/:id', async (c) => {
    const id = c.req.param('id');
    if (!(await revokeEnrollmentToken(store, clock, id))) throw new ApiError(404, 'unknown-token', `no unrevoked enrollment token with id ${JSON.stringify(id)}`);
    deps.logger.info({ tokenId: id, operator: c.get('operator').name }, 'enrollment token revoked');
    return c.json({ id, revoked: true } satisfies TokenRevoked);
  });

  return app;
}
