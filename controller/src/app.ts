import { sql } from 'drizzle-orm';
import { Hono } from 'hono';
import type { ControllerDeps } from './deps.js';
import { adminRoutes } from './http/admin-routes.js';
import { agentRoutes } from './http/agent-routes.js';
import { dashboardRoutes, type DashboardOptions } from './dashboard/routes.js';
import { ApiError, errorHandler } from './http/errors.js';
import { operatorGuard } from './http/operator-auth.js';
import { operatorRoutes } from './http/operator-routes.js';
import { rebootSettingsRoutes } from './http/reboot-settings-routes.js';
import { rolloutRoutes } from './rollouts/routes.js';
import { metricsHandler } from './metrics/route.js';
import { webhookRoutes } from './webhooks/routes.js';

export interface AppLimits {
  maxBodyBytes: number;
  maxReportBodyBytes: number;
  /** POST /v1/releases: a signed bundle carries a statement per host, about 1.5 KB each. */
  maxReleaseBodyBytes: number;
}

/** Releases: 32 MiB holds a signed bundle of about 20,000 hosts. */
export const DEFAULT_LIMITS: AppLimits = { maxBodyBytes: 64 * 1024, maxReportBodyBytes: 1024 * 1024, maxReleaseBodyBytes: 32 * 1024 * 1024 };

/** The controller's HTTP surface. Every error, from any route, is rendered by the one onError. */
export function createApp(deps: ControllerDeps, limits: AppLimits = DEFAULT_LIMITS, dashboard: DashboardOptions = {}) {
  const app = new Hono();
  // A load balancer sends agents and operators away from a replica that cannot reach the database.
  app.get('/healthz', async (c) => {
    await deps.store.rows(sql`select 1 as ok`);
    return c.json({ ok: true });
  });
  app.get('/', (c) => c.redirect('/dashboard', 302));
  app.get('/dashboard/', (c) => c.redirect(`/dashboard${new URL(c.req.url).search}`, 301));
  app.route('/dashboard', dashboardRoutes(deps, dashboard));
  app.get('/metrics', metricsHandler(deps.metrics, deps.metricsToken));
  app.route('/v1/agent', agentRoutes(deps, limits));
  app.route('/v1', operatorRoutes(deps, limits.maxBodyBytes));
  app.route('/v1', rebootSettingsRoutes(deps, operatorGuard(deps.store, limits.maxBodyBytes)));
  // Rollout specs may list every host of a fleet, and a release carries a signed statement per host:
  // both may be far larger than a single operator request.
  app.route(
    '/v1',
    rolloutRoutes(deps, deps.rollouts, {
      releases: operatorGuard(deps.store, limits.maxReleaseBodyBytes),
      rest: operatorGuard(deps.store, limits.maxReportBodyBytes * 8),
    }),
  );
  app.route('/v1', webhookRoutes(deps, operatorGuard(deps.store, limits.maxBodyBytes)));
  app.route('/v1', adminRoutes(deps, operatorGuard(deps.store, limits.maxBodyBytes)));
  app.notFound((c) => {
    throw new ApiError(404, 'not-found', `no route for ${c.req.method} ${c.req.path}`);
  });
  app.onError(errorHandler(deps.logger));
  return app;
}
