import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { JSX } from 'hono/jsx/jsx-runtime';
import { RolloutAction, type RolloutStatus } from '../../../shared/src/rollout-api.js';
import { findOperator } from '../auth/operator-tokens.js';
import { scopeAllows } from '../auth/scopes.js';
import type { ControllerDeps } from '../deps.js';
import { hostStatus, listHostStatuses } from '../hosts/status.js';
import { listUnknownHosts } from '../hosts/unknown.js';
import { readRelease, releaseProvenance } from '../rollouts/releases.js';
import { listRollouts, rolloutStatus } from '../rollouts/status.js';
import { listDeliveries, listWebhooks } from '../webhooks/endpoints.js';
import { DASHBOARD_JS } from './client-script.js';
import { hostDiffFor } from '../closure-diff/host-query.js';
import { retryChecked } from '../rollouts/checked-start.js';
import { releaseInsight } from '../rollouts/release-insight.js';
import { StorePath } from '../../../shared/src/protocol.js';
import { FleetDiffView, HostDiffPage, ReleaseDiffPage } from './diff-view.js';
import { FleetPage, fleetLiveState } from './fleet-page.js';
import { fleetQuery, fleetView, parseFleetFilter, type FleetFilter } from './fleet-view.js';
import { HOST_ACTIONS } from './host-actions.js';
import { HostConfirmPage, HostPage, hostFragments, hostPath } from './host-page.js';
import { BASE, Layout } from './layout.js';
import { ChangeFeed, HAVE_PARAM, liveUpdates, type LiveOptions } from './live.js';
import { liveDigest, type LiveState } from './live-state.js';
import { LoginPage } from './login-page.js';
import { agentsNow } from './agent-now.js';
import { activeRollouts, eventSubjects, hostGenerations, latestFailure, recentHostEvents } from './queries.js';
import { foreignOrigin, wantsSecureCookie } from './request-origin.js';
import { ConfirmPage, DESTRUCTIVE, RolloutListPage, RolloutPage, rolloutFragments, rolloutPath } from './rollout-page.js';
import { DashboardSessions, randomToken, sameSecret, sessionMay, type DashboardSession } from './sessions.js';
import { DASHBOARD_CSS } from './styles.js';
import { RECENT_DELIVERIES, webhookFragments, WebhooksPage, type WebhookView } from './webhooks-page.js';

export const SESSION_COOKIE = 'shoal_session';
export const LOGIN_COOKIE = 'shoal_login';

export interface DashboardOptions {
  /** Mark cookies Secure: always, never, or 'auto' = when the request came over https (directly or per X-Forwarded-Proto). */
  secureCookies?: boolean | 'auto';
  sessions?: DashboardSessions;
  /** How often live streams look for new events. */
  livePollMs?: number;
  live?: Partial<LiveOptions>;
}

type DashboardEnv = { Variables: { session: DashboardSession } };

const FORM_LIMIT_BYTES = 16 * 1024;
const ACTION_DONE: Record<RolloutAction, string> = {
  approve: 'approved the waiting wave',
  pause: 'paused',
  resume: 'resumed',
  abort: 'aborted',
  rollback: 'started rolling back',
};

const SECURITY_HEADERS: Record<string, string> = {
  // Inline style attributes only (widths of bars); no inline script, no framing, forms post here only.
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
};

function html(c: Context, element: JSX.Element, status: 200 | 401 | 403 | 404 | 413 = 200): Response {
  c.header('cache-control', 'no-store');
  return c.html(`<!doctype html>${String(element)}`, status);
}

function render(element: JSX.Element): string {
  return String(element);
}

function renderAll(parts: Record<string, JSX.Element>): LiveState {
  return { parts: Object.fromEntries(Object.entries(parts).map(([id, element]) => [id, render(element)])) };
}

/** A page only reachable from the dashboard itself; `next` must not send the browser elsewhere. */
function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.includes('\\')) return BASE;
  return next === BASE || next.startsWith(`${BASE}/`) || next.startsWith(`${BASE}?`) ? next : BASE;
}

function refusal(c: Context, status: 401 | 403 | 404 | 413, title: string, text: string, session: DashboardSession | null = null): Response {
  return html(
    c,
    <Layout title={title} section="none" session={session}>
      <h1>{title}</h1>
      <p>{text}</p>
      <p>
        <a href={BASE}>Back to the fleet</a>
      </p>
    </Layout>,
    status,
  );
}

/** The dashboard: server-rendered pages behind an operator login, with live updates over SSE. */
export function dashboardRoutes(deps: ControllerDeps, options: DashboardOptions = {}) {
  const { store, clock, presence } = deps;
  const sessions = options.sessions ?? new DashboardSessions(store, clock);
  const secure = options.secureCookies ?? 'auto';
  const feed = new ChangeFeed(store, deps.rollouts, deps.bus, options.livePollMs ?? 1000, deps.logger.child({ component: 'dashboard' }));
  const live: LiveOptions = { refreshMs: 5000, heartbeatMs: 15_000, ...options.live };
  const app = new Hono<DashboardEnv>();

  app.use('*', async (c, next) => {
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
  });

  const sessionOf = (c: Context) => sessions.find(getCookie(c, SESSION_COOKIE));

  /** Pages: without a session, off to the login page (and back here afterwards). */
  const page: MiddlewareHandler<DashboardEnv> = async (c, next) => {
    const session = await sessionOf(c);
    if (!session) {
      const url = new URL(c.req.url);
      return c.redirect(`${BASE}/login?next=${encodeURIComponent(url.pathname + url.search)}`, 303);
    }
    c.set('session', session);
    await next();
  };

  /** Live streams: a session, or 403 (EventSource cannot follow a login). */
  const stream: MiddlewareHandler<DashboardEnv> = async (c, next) => {
    const session = await sessionOf(c);
    if (!session) return refusal(c, 403, 'Not signed in', 'Sign in to watch this page live.');
    c.set('session', session);
    await next();
  };

  /** Actions: a session, a same-origin browser, and this session's CSRF token in the form. Anything less is 403. */
  const formLimit: MiddlewareHandler<DashboardEnv> = bodyLimit({
    maxSize: FORM_LIMIT_BYTES,
    onError: (c) => refusal(c, 413, 'Form too large', `A dashboard form is at most ${FORM_LIMIT_BYTES} bytes.`),
  });
  const action: MiddlewareHandler<DashboardEnv> = async (c, next) => {
    const session = await sessionOf(c);
    if (!session) return refusal(c, 403, 'Not signed in', 'Sign in before changing anything; nothing was done.');
    const foreign = foreignOrigin(c);
    if (foreign) return refusal(c, 403, 'Refused', `This request did not come from the dashboard (${foreign}); nothing was done.`, session);
    const form = await c.req.parseBody();
    const token = typeof form._csrf === 'string' ? form._csrf : '';
    if (!sameSecret(token, session.csrf)) {
      return refusal(c, 403, 'Refused', 'The form carried no valid CSRF token (reload the page and try again); nothing was done.', session);
    }
    c.set('session', session);
    await next();
  };

  const cookieOptions = (c: Context, path: string) => ({ path, httpOnly: true, sameSite: 'Strict' as const, secure: wantsSecureCookie(c, secure) });

  // ---- Assets (public: they hold nothing secret) ----
  app.get('/assets/dashboard.css', (c) => {
    c.header('cache-control', 'public, max-age=300');
    return c.body(DASHBOARD_CSS, 200, { 'content-type': 'text/css; charset=utf-8' });
  });
  app.get('/assets/dashboard.js', (c) => {
    c.header('cache-control', 'public, max-age=300');
    return c.body(DASHBOARD_JS, 200, { 'content-type': 'text/javascript; charset=utf-8' });
  });

  // ---- Login and logout ----
  const loginForm = (c: Context, next: string, error: string | null, status: 200 | 401 | 403 = 200) => {
    // Login CSRF: the form's token must match a cookie only this site could have set.
    const csrf = randomToken();
    setCookie(c, LOGIN_COOKIE, csrf, { ...cookieOptions(c, `${BASE}/login`), maxAge: 1800 });
    return html(c, <LoginPage csrf={csrf} next={next} error={error} />, status);
  };

  app.get('/login', async (c) => {
    const next = safeNext(c.req.query('next'));
    if (await sessionOf(c)) return c.redirect(next, 303);
    return loginForm(c, next, null);
  });

  app.post('/login', formLimit, async (c) => {
    const form = await c.req.parseBody();
    const next = safeNext(form.next);
    const foreign = foreignOrigin(c);
    if (foreign) return loginForm(c, next, `Sign-in refused: it did not come from this dashboard (${foreign}).`, 403);
    const expected = getCookie(c, LOGIN_COOKIE) ?? '';
    const given = typeof form._csrf === 'string' ? form._csrf : '';
    if (!expected || !sameSecret(given, expected)) return loginForm(c, next, 'The sign-in form expired; please enter the token again.', 403);
    const token = typeof form.token === 'string' ? form.token.trim() : '';
    const operator = token ? await findOperator(deps.store, token) : null;
    if (!operator) {
      deps.logger.warn({ remote: c.req.header('x-forwarded-for') ?? null }, 'dashboard sign-in with an unknown operator token');
      return loginForm(c, next, 'That token is not known to this controller, or it was revoked.', 401);
    }
    if (!scopeAllows(operator.scope, 'GET', BASE)) {
      return loginForm(c, next, `That token has scope ${operator.scope}: it may only publish releases, not sign in to the dashboard.`, 403);
    }
    const session = sessions.open(operator);
    deleteCookie(c, LOGIN_COOKIE, { path: `${BASE}/login` });
    setCookie(c, SESSION_COOKIE, session.id, cookieOptions(c, BASE));
    deps.logger.info({ operator: operator.name }, 'dashboard sign-in');
    return c.redirect(next, 303);
  });

  app.post('/logout', formLimit, action, (c) => {
    sessions.close(c.get('session').id);
    deleteCookie(c, SESSION_COOKIE, { path: BASE });
    return c.redirect(`${BASE}/login`, 303);
  });

  // ---- Fleet ----
  const fleetNow = async (filter: FleetFilter) => {
    const view = fleetView(await listHostStatuses(deps.store, presence), filter);
    return { view, rollouts: await activeRollouts(store, clock.now()) };
  };

  app.get('/', page, async (c) => {
    const { view, rollouts } = await fleetNow(parseFleetFilter(c.req.query()));
    // The stream starts from what this page shows: it sends nothing until that changes.
    const have = liveDigest(fleetLiveState(view, rollouts));
    const params = new URLSearchParams(fleetQuery(view.filter));
    params.set(HAVE_PARAM, have);
    const liveUrl = `${BASE}/live/fleet?${params}`;
    return html(c, <FleetPage session={c.get('session')} view={view} rollouts={rollouts} now={clock.now()} liveUrl={liveUrl} unknownHosts={await listUnknownHosts(deps.store)} />);
  });

  app.get('/live/fleet', stream, (c) => {
    const filter = parseFleetFilter(c.req.query());
    const id = c.get('session').id;
    const render = async () => {
      if (!(await sessions.isOpen(id))) return null;
      const { view, rollouts } = await fleetNow(filter);
      return fleetLiveState(view, rollouts);
    };
    return liveUpdates(c, feed, live, render, c.req.query(HAVE_PARAM) ?? null);
  });

  // ---- Hosts ----
  const hostView = async (name: string) => {
    const host = await hostStatus(deps.store, presence, name);
    if (!host) return null;
    return { host, events: await recentHostEvents(store, name), generations: await hostGenerations(store, name) };
  };

  /** The host actions this session's token may take: the API's scope rule, asked about the API route each action mirrors. */
  const allowedHostActions = (session: DashboardSession, host: string): ReadonlySet<string> =>
    new Set(
      Object.entries(HOST_ACTIONS)
        .filter(([, hostAction]) => {
          const request = hostAction.api(host);
          return scopeAllows(session.operator.scope, request.method, request.path);
        })
        .map(([name]) => name),
    );

  app.get('/hosts/:name', page, async (c) => {
    const view = await hostView(c.req.param('name'));
    if (!view) return refusal(c, 404, 'No such host', `No host is named "${c.req.param('name')}".`, c.get('session'));
    const session = c.get('session');
    return html(c, <HostPage session={session} {...view} now={clock.now()} allowed={allowedHostActions(session, view.host.name)} />);
  });

  app.get('/hosts/:name/diff', page, async (c) => {
    const target = StorePath.safeParse(c.req.query('target'));
    const outcome = await hostDiffFor(deps, c.req.param('name'), target.success ? target.data : undefined);
    if (!outcome.ok) return refusal(c, outcome.status === 404 ? 404 : 403, 'No diff', outcome.message, c.get('session'));
    return html(c, <HostDiffPage session={c.get('session')} diff={outcome.diff} />);
  });

  // ---- Releases: what one changes, against what its hosts run now ----
  app.get('/releases/:name', page, async (c) => {
    const release = await readRelease(deps.store, c.req.param('name'));
    if (!release) return refusal(c, 404, 'No such release', `No release is named "${c.req.param('name')}".`, c.get('session'));
    const insight = await releaseInsight(deps, release.hosts);
    return html(c, <ReleaseDiffPage session={c.get('session')} release={release.name} {...insight} />);
  });

  app.get('/live/hosts/:name', stream, async (c) => {
    const id = c.get('session').id;
    const name = c.req.param('name');
    if (!(await hostView(name))) return refusal(c, 404, 'No such host', `No host is named "${name}".`);
    return liveUpdates(c, feed, live, async () => {
      const view = (await sessions.isOpen(id)) ? await hostView(name) : null;
      return view ? renderAll(hostFragments(view.host, view.events, view.generations, clock.now(), true)) : null;
    });
  });

  /** A host action: refused as the API would refuse it, asked about on a confirmation page first, then done under the operator's name. */
  app.post('/hosts/:name/actions/:action', formLimit, action, async (c) => {
    const session = c.get('session');
    const name = c.req.param('name');
    const hostAction = Object.hasOwn(HOST_ACTIONS, c.req.param('action')) ? HOST_ACTIONS[c.req.param('action')]! : null;
    if (!hostAction) return refusal(c, 404, 'Unknown action', `"${c.req.param('action')}" is not one of ${Object.keys(HOST_ACTIONS).join(', ')}.`, session);
    if (!(await hostView(name))) return refusal(c, 404, 'No such host', `No host is named "${name}"; nothing was done.`, session);
    if (!allowedHostActions(session, name).has(c.req.param('action'))) {
      return refusal(c, 403, 'Not allowed', `Your token has scope ${session.operator.scope}, which may not ${hostAction.label.toLowerCase()}; nothing was done.`, session);
    }
    const form = Object.fromEntries(Object.entries(await c.req.parseBody()).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
    const parsed = hostAction.parse(form);
    if (!parsed.ok) {
      session.flash = { kind: 'error', text: `Nothing was done: ${parsed.message}` };
      return c.redirect(hostPath(name), 303);
    }
    if (form.confirmed !== 'yes') {
      return html(
        c,
        <HostConfirmPage session={session} host={name} action={c.req.param('action')} question={hostAction.question(name, parsed.value)} fields={hostAction.fields(parsed.value)} />,
      );
    }
    const outcome = await hostAction.run(deps, name, parsed.value, `operator:${session.operator.name}`);
    if (!outcome.ok && outcome.status === 404) return refusal(c, 404, 'No such host', outcome.message, session);
    session.flash = outcome.ok ? { kind: 'ok', text: outcome.done } : { kind: 'error', text: `Nothing was done: ${outcome.message}` };
    deps.logger.info({ operator: session.operator.name, host: name, action: c.req.param('action'), ok: outcome.ok }, 'dashboard host action');
    return c.redirect((outcome.ok && outcome.goTo) || hostPath(name), 303);
  });

  // ---- Rollouts ----
  const failuresOf = (status: RolloutStatus) =>
    Promise.all(
      status.waves
        .flatMap((wave) => wave.hosts)
        .filter((host) => host.state === 'failed' || host.rollbackState === 'failed')
        .slice(0, 10)
        .map(async (host) => ({ host: host.host, reason: host.reason, report: await latestFailure(store, host.host, host.manifestVersion) })),
    );

  /** Each member's connection now: a host whose agent is offline is waiting, not in progress. */
  const connectionsOf = (status: RolloutStatus) => new Map(status.waves.flatMap((wave) => wave.hosts).map((host) => [host.host, presence.mode(host.host)] as const));
  /** Each member's last phase: rebooting, staged for its window, waiting for a reboot grant show as such. */
  const agentsOf = (status: RolloutStatus) => agentsNow(store, status.waves.flatMap((wave) => wave.hosts.filter((h) => h.state === 'issued' || h.state === 'in-progress').map((h) => h.host)));

  app.get('/rollouts', page, async (c) => html(c, <RolloutListPage session={c.get('session')} rollouts={await listRollouts(deps.store)} now={clock.now()} />));

  app.get('/rollouts/:id', page, async (c) => {
    const status = await rolloutStatus(deps.store, c.req.param('id'), clock.now());
    if (!status) return refusal(c, 404, 'No such rollout', `No rollout has the id "${c.req.param('id')}".`, c.get('session'));
    const provenance = await releaseProvenance(deps.store, status.release);
    // What the rollout changes on its hosts (from what each ran when issued, else what it runs now); read from the cache, not live-updated.
    const insight = deps.cache.configured ? await releaseInsight(deps, status.waves.flatMap((w) => w.hosts.map((h) => ({ host: h.host, storePath: h.targetPath, from: h.previousSystem })))) : null;
    const changes = insight?.diff ? <FleetDiffView diff={insight.diff} drifted={insight.drifted} /> : null;
    return html(
      c,
      <RolloutPage
        session={c.get('session')}
        status={status}
        provenance={provenance}
        failures={await failuresOf(status)}
        now={clock.now()}
        connections={connectionsOf(status)}
        agents={await agentsOf(status)}
        changes={changes}
      />,
    );
  });

  app.get('/live/rollouts/:id', stream, async (c) => {
    const session = c.get('session');
    const id = c.req.param('id');
    if (!(await rolloutStatus(store, id, clock.now()))) return refusal(c, 404, 'No such rollout', `No rollout has the id "${id}".`);
    return liveUpdates(c, feed, live, async () => {
      const status = (await sessions.isOpen(session.id)) ? await rolloutStatus(store, id, clock.now()) : null;
      return status ? renderAll(rolloutFragments(status, session, await failuresOf(status), clock.now(), connectionsOf(status), await agentsOf(status))) : null;
    });
  });

  /** The no-JavaScript way to ask "are you sure?" before abort and rollback. */
  app.get('/rollouts/:id/confirm/:action', page, async (c) => {
    const parsed = RolloutAction.safeParse(c.req.param('action'));
    const status = await rolloutStatus(deps.store, c.req.param('id'), clock.now());
    if (!status || !parsed.success || !DESTRUCTIVE.has(parsed.data)) {
      return refusal(c, 404, 'Nothing to confirm', 'Only abort and rollback of an existing rollout ask for confirmation.', c.get('session'));
    }
    return html(c, <ConfirmPage session={c.get('session')} status={status} action={parsed.data} />);
  });

  app.post('/rollouts/:id/actions/:action', formLimit, action, async (c) => {
    const session = c.get('session');
    const id = c.req.param('id');
    const parsed = RolloutAction.safeParse(c.req.param('action'));
    if (!parsed.success) return refusal(c, 404, 'Unknown action', `"${c.req.param('action')}" is not one of ${RolloutAction.options.join(', ')}.`, session);
    if (!sessionMay(session, 'POST', `/v1/rollouts/${id}/${parsed.data}`)) {
      return refusal(c, 403, 'Not allowed', `Your token has scope ${session.operator.scope}, which may not ${parsed.data} rollouts; nothing was done.`, session);
    }
    const form = await c.req.parseBody();
    if (DESTRUCTIVE.has(parsed.data) && form.confirmed !== 'yes') return c.redirect(`${rolloutPath(id)}/confirm/${parsed.data}`, 303);
    // The same engine operation as POST /v1/rollouts/:id/:action, under the signed-in operator's name.
    const outcome = await deps.rollouts.act(id, parsed.data, `operator:${session.operator.name}`);
    if (!outcome.ok && outcome.kind === 'unknown-rollout') return refusal(c, 404, 'No such rollout', outcome.message, session);
    session.flash = outcome.ok ? { kind: 'ok', text: `Rollout ${id} ${ACTION_DONE[parsed.data]}.` } : { kind: 'error', text: outcome.message };
    deps.logger.info({ operator: session.operator.name, rolloutId: id, action: parsed.data, ok: outcome.ok }, 'dashboard rollout action');
    return c.redirect(rolloutPath(id), 303);
  });

  app.post('/rollouts/:id/retry', formLimit, action, async (c) => {
    const session = c.get('session');
    const id = c.req.param('id');
    if (!sessionMay(session, 'POST', `/v1/rollouts/${id}/retry`)) {
      return refusal(c, 403, 'Not allowed', `Your token has scope ${session.operator.scope}, which may not retry rollouts; nothing was done.`, session);
    }
    // What POST /v1/rollouts/:id/retry does, cache preflight included, under the signed-in operator's name.
    // Starting despite a failed preflight is left to the API and CLI (--skip-preflight), which the refusal names.
    const outcome = await retryChecked(deps, deps.rollouts, id, `operator:${session.operator.name}`, false);
    if (!outcome.ok && outcome.kind === 'unknown-rollout') return refusal(c, 404, 'No such rollout', outcome.message, session);
    deps.logger.info({ operator: session.operator.name, rolloutId: id, action: 'retry', ok: outcome.ok }, 'dashboard rollout action');
    if (!outcome.ok) {
      session.flash = { kind: 'error', text: outcome.message };
      return c.redirect(rolloutPath(id), 303);
    }
    session.flash = { kind: 'ok', text: `Rollout ${outcome.value} retries what ${id} left undone.` };
    return c.redirect(rolloutPath(outcome.value), 303);
  });

  // ---- Webhooks (read-only: endpoints are managed over the operator API) ----
  const webhookViews = async (): Promise<WebhookView[]> => {
    const views: WebhookView[] = [];
    for (const hook of await listWebhooks(store)) {
      const deliveries = await listDeliveries(store, hook.id, { limit: RECENT_DELIVERIES });
      const subjects = await eventSubjects(store, deliveries.map((delivery) => delivery.eventId));
      views.push({ hook, deliveries: deliveries.map((delivery) => ({ ...delivery, ...(subjects.get(delivery.eventId) ?? { rolloutId: null, host: null }) })) });
    }
    return views;
  };

  app.get('/webhooks', page, async (c) => html(c, <WebhooksPage session={c.get('session')} views={await webhookViews()} now={clock.now()} />));

  // Attempts append no event, so between events this page relies on the periodic re-render.
  app.get('/live/webhooks', stream, (c) => {
    const id = c.get('session').id;
    return liveUpdates(c, feed, live, async () => ((await sessions.isOpen(id)) ? renderAll(webhookFragments(await webhookViews(), clock.now())) : null));
  });

  app.notFound(async (c) => refusal(c, 404, 'Not found', `The dashboard has no page at ${c.req.path}.`, await sessionOf(c)));

  return app;
}
