import { Hono, type MiddlewareHandler } from 'hono';
import { Tag } from '../../../shared/src/protocol.js';
import { SetRebootSettingsRequest, type TagRebootSettingsList } from '../../../shared/src/reboot-settings.js';
import type { ControllerDeps } from '../deps.js';
import { hostRebootSettings, listTagSettings, setHostRebootSettings, setTagRebootSettings, tagRebootSettings } from '../hosts/reboot-settings.js';
import { ApiError } from './errors.js';
import type { OperatorEnv } from './operator-auth.js';
import { readBody } from './request.js';

/**
 * Reboot policy, maintenance windows and reboot locks set on the controller, per host and per tag.
 * Scopes: auth/scopes.ts (setting them is a deploy decision). The host paths sit under /hosts/*,
 * which operatorRoutes (mounted before this) already guards.
 */
export function rebootSettingsRoutes(deps: ControllerDeps, guard: MiddlewareHandler<OperatorEnv>[]) {
  const { db, clock } = deps;
  const app = new Hono<OperatorEnv>();
  for (const path of ['/tags', '/tags/*']) app.use(path, ...guard);

  const hostView = (name: string) => {
    const view = hostRebootSettings(db, clock, name);
    if (!view) throw new ApiError(404, 'unknown-host', `no host named ${JSON.stringify(name)}`);
    return view;
  };

  app.get('/hosts/:name/reboot-settings', (c) => c.json(hostView(c.req.param('name'))));

  app.put('/hosts/:name/reboot-settings', async (c) => {
    const name = c.req.param('name');
    hostView(name);
    const request = await readBody(c, SetRebootSettingsRequest);
    const operator = c.get('operator').name;
    const outcome = setHostRebootSettings(db, clock, name, request, `operator:${operator}`);
    if (!outcome.ok) throw new ApiError(outcome.status === 409 ? 400 : outcome.status, outcome.code, outcome.message);
    deps.logger.info({ host: name, operator, settings: request }, 'host reboot settings set');
    return c.json(hostView(name));
  });

  app.get('/tags/reboot-settings', (c) => c.json({ tags: listTagSettings(db) } satisfies TagRebootSettingsList));

  const tagParam = (value: string) => {
    const parsed = Tag.safeParse(value);
    if (!parsed.success) throw new ApiError(400, 'invalid-tag', `${JSON.stringify(value)}: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  };

  app.get('/tags/:tag/reboot-settings', (c) => {
    const tag = tagParam(c.req.param('tag'));
    return c.json(tagRebootSettings(db, tag) ?? { tag, policy: null, windows: null, maxRebooting: null });
  });

  app.put('/tags/:tag/reboot-settings', async (c) => {
    const tag = tagParam(c.req.param('tag'));
    const request = await readBody(c, SetRebootSettingsRequest);
    const operator = c.get('operator').name;
    const settings = setTagRebootSettings(db, clock, tag, request, `operator:${operator}`);
    deps.logger.info({ tag, operator, settings: request }, 'tag reboot settings set');
    return c.json(settings);
  });

  return app;
}
