import { Hono, type MiddlewareHandler } from 'hono';
import {
  AdoptHostRequest,
  CreateOperatorTokenRequest,
  type HostRemoved,
  type OperatorTokenCreated,
  type OperatorTokenList,
  type TokenRevoked,
  type UnknownHostList,
} from '../../../shared/src/operator-api.js';
import { createOperatorToken, listOperatorTokens, revokeOperatorToken } from '../auth/operator-tokens.js';
import { iso, isoOrNull } from '../clock.js';
import { streamBackup } from '../db/backup.js';
import { sqliteWriter } from '../db/sqlite-store.js';
import type { ControllerDeps } from '../deps.js';
import { adoptHost } from '../hosts/lifecycle.js';
import { hostStatus } from '../hosts/status.js';
import { forgetUnknownHost, listUnknownHosts } from '../hosts/unknown.js';
import { ApiError } from './errors.js';
import type { OperatorEnv } from './operator-auth.js';
import { readBody } from './request.js';

/** Operator tokens, unknown hosts and backups. Scopes: auth/scopes.ts (tokens and backups need admin; listing unknown hosts, read). */
export function adminRoutes(deps: ControllerDeps, guard: MiddlewareHandler<OperatorEnv>[]) {
  const { clock } = deps;
  const app = new Hono<OperatorEnv>();
  for (const path of ['/operator-tokens', '/operator-tokens/*', '/unknown-hosts', '/unknown-hosts/*', '/backup']) app.use(path, ...guard);

  app.get('/operator-tokens', async (c) => {
    const tokens = (await listOperatorTokens(deps.store)).map((t) => ({ id: t.id, name: t.name, scope: t.scope, createdAt: iso(t.createdAt), revokedAt: isoOrNull(t.revokedAt) }));
    return c.json({ tokens } satisfies OperatorTokenList);
  });

  app.post('/operator-tokens', async (c) => {
    const request = await readBody(c, CreateOperatorTokenRequest);
    const created = await createOperatorToken(deps.store, clock, request.name, request.scope);
    deps.logger.info({ tokenId: created.id, name: request.name, scope: request.scope, operator: c.get('operator').name }, 'operator token created');
    return c.json({ id: created.id, name: request.name, scope: created.scope, token: created.token } satisfies OperatorTokenCreated, 201);
  });

  app.delete('/operator-tokens/:id', async (c) => {
    const id = c.req.param('id');
    if (!(await revokeOperatorToken(deps.store, clock, id))) throw new ApiError(404, 'unknown-token', `no unrevoked operator token with id ${JSON.stringify(id)}`);
    // Dashboard sessions opened with it die with it: every session lookup checks its token.
    deps.logger.info({ tokenId: id, operator: c.get('operator').name }, 'operator token revoked');
    return c.json({ id, revoked: true } satisfies TokenRevoked);
  });

  app.get('/unknown-hosts', async (c) => c.json({ hosts: await listUnknownHosts(deps.store) } satisfies UnknownHostList));

  app.post('/unknown-hosts/:name/adopt', async (c) => {
    const name = c.req.param('name');
    const request = await readBody(c, AdoptHostRequest);
    const operator = c.get('operator').name;
    const outcome = await adoptHost(deps.store, clock, { name, fingerprint: request.fingerprint, tags: request.tags, actor: `operator:${operator}` });
    if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message);
    deps.logger.info({ host: name, fingerprint: outcome.fingerprint, operator }, 'unknown host adopted');
    return c.json(await hostStatus(deps.store, deps.presence, name), 201);
  });

  app.delete('/unknown-hosts/:name', async (c) => {
    const name = c.req.param('name');
    if ((await forgetUnknownHost(deps.store, name)) === 0) throw new ApiError(404, 'unknown-host', `no unknown host named ${JSON.stringify(name)} is recorded`);
    return c.json({ removed: name } satisfies HostRemoved);
  });

  app.get('/backup', async (c) => {
    // An online copy of the SQLite file; a PostgreSQL database has its own tools, which also cover its replicas and history.
    if (!deps.store.onlineBackup) {
      throw new ApiError(
        409,
        'backup-sqlite-only',
        `the controller runs on ${deps.store.engine}: /v1/admin/backup copies the SQLite database only; back PostgreSQL up with pg_dump and restore with pg_restore`,
      );
    }
    const backup = await streamBackup(sqliteWriter(deps.store).db, clock);
    deps.logger.info({ operator: c.get('operator').name, bytes: backup.bytes }, 'database backup taken');
    return new Response(backup.stream, {
      status: 200,
      headers: {
        'content-type': 'application/vnd.sqlite3',
        'content-length': String(backup.bytes),
        'content-disposition': `attachment; filename="${backup.fileName}"`,
        'cache-control': 'no-store',
      },
    });
  });

  return app;
}
