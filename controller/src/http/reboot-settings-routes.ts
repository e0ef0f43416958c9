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
  const { store, clock } = deps;
  const app = new Hono<OperatorEnv>();
  for (const path of ['/tags', '/tags/*']) app.use(path, ...guard);

  const hostView = async (name: string) => {
    const view = await hostRebootSettings(store, clock, name);
    if (!view) throw new ApiError(404, 'unknown-host', `no host named ${JSON.stringify(name)}`);
    return view;
  };

  app.get('/hosts/:name/reboot-settings', async (c) => c.json(await hostView(c.req.param('name'))));

  app.put('/hosts/:name/reboot-settings', async (c) => {
    const name = c.req.param('name');
    await hostView(name);
    const request = await readBody(c, SetRebootSettingsRequest);
    const operator = c.get('operator').name;
    const outcome = await setHostRebootSettings(store, clock, name, request, `operator:${operator}`);
    if (!outcome.ok) throw new ApiError(outcome.status === 409 ? 400 : outcome.status, outcome.code, outcome.message);
    deps.logger.info({ host: name, operator, settings: request }, 'host reboot settings set');
    return c.json(await hostView(name));
  });

  app.get('/tags/reboot-settings', async (c) => c.json({ tags: await listTagSettings(store) } satisfies TagRebootSettingsList));

  const tagParam = (value: string) => {
    const parsed = Tag.safeParse(value);
    if (!parsed.success) throw new ApiError(400, 'invalid-tag', `${JSON.stringify(value)}: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  };

  app.get('/tags/:tag/reboot-settings', async (c) => {
    const tag = tagParam(c.req.param('tag'));
    return c.json((await tagRebootSettings(store, tag)) ?? { tag, policy: null, windows: null, maxRebooting: null });
  });

  app.put('/tags/:tag/reboot-settings', async (c) => {
    const tag = tagParam(c.req.param('tag'));
    const request = await readBody(c, SetRebootSettingsRequest);
    const operator = c.get('operator').name;
    const settings = await setTagRebootSettings(store, clock, tag, request, `operator:${operator}`);
    deps.logger.info({ tag, operator, settings: request }, 'tag reboot settings set');
    return c.json(settings);
  });

  return app;
}
