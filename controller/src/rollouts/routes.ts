import { and, gt, lte } from 'drizzle-orm';
import { Hono, type MiddlewareHandler } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { ReleaseBundle } from '../../../shared/src/release-statement.js';
import { CreateReleaseRequest, RetryRolloutRequest, RolloutAction, RolloutSpec, StartRolloutRequest, type ReleaseDiffReport } from '../../../shared/src/rollout-api.js';
import type { OperatorIdentity } from '../auth/operator-tokens.js';
import type { ControllerDeps } from '../deps.js';
import { ApiError } from '../http/errors.js';
import { readBody, readJson } from '../http/request.js';
import { wakeSignal } from '../../../shared/src/wake-signal.js';
import { retryChecked, startChecked } from './checked-start.js';
import type { EngineOutcome, RefusalKind, RolloutEngine } from './engine.js';
import { releaseInsight } from './release-insight.js';
import { createUnsignedRelease, listReleases, publishBundle, readRelease } from './releases.js';
import { planReport } from './plan-report.js';
import { listRollouts, rolloutEvents, rolloutEventsAmong, rolloutStatus } from './status.js';
import { eventCursorAt, newestEventCursor, readEvents, settledThrough } from '../events-cursor.js';

type OperatorEnv = { Variables: { operator: OperatorIdentity } };

const EventQuery = z.object({
  afterId: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
});

/** SSE keep-alive: proxies and browsers drop a silent stream after a minute or so. */
const SSE_HEARTBEAT_MS = 15_000;
/**
 * A stream follows the audit log from this many ids before the newest at its start: far more than
 * the events written while one transaction is open, so an event in flight then is not skipped.
 */
const STREAM_LOOKBACK_IDS = 1000;

/** The HTTP status of each engine refusal; the refusal's kind is the error code clients see. */
const REFUSAL_STATUS: Readonly<Record<RefusalKind, 400 | 404 | 409>> = {
  'unknown-release': 404,
  'unknown-rollout': 404,
  'invalid-rollout': 400,
  'rollout-overlap': 409,
  'invalid-transition': 409,
  'nothing-to-retry': 409,
  'preflight-failed': 409,
};

function unwrap<T>(outcome: EngineOutcome<T>): T {
  if (outcome.ok) return outcome.value;
  throw new ApiError(REFUSAL_STATUS[outcome.kind], outcome.kind, outcome.message, outcome.problems);
}

/** Releases and rollouts over the operator API, plus a server-sent-events stream for `watch` and the dashboard. */
export function rolloutRoutes(
  deps: ControllerDeps,
  engine: RolloutEngine,
  guards: { releases: MiddlewareHandler<OperatorEnv>[]; rest: MiddlewareHandler<OperatorEnv>[] },
) {
  const { store, clock } = deps;
  const app = new Hono<OperatorEnv>();
  // '/releases/*' would match '/releases' too, and its smaller body limit would win.
  app.use('/releases', ...guards.releases);
  for (const path of ['/releases/:name', '/releases/:name/diff', '/rollouts', '/rollouts/*']) app.use(path, ...guards.rest);
  const actor = (c: { get(key: 'operator'): OperatorIdentity }) => `operator:${c.get('operator').name}`;
  const status = async (id: string) => {
    const found = await rolloutStatus(store, id, clock.now());
    if (!found) throw new ApiError(404, 'unknown-rollout', `no rollout with id "${id}"`);
    return found;
  };

  /** A CI-signed ReleaseBundle (kind "shoal-release-bundle"), or in single-key mode an unsigned CreateReleaseRequest. */
  app.post('/releases', async (c) => {
    const raw = await readJson(c);
    const isBundle = typeof raw === 'object' && raw !== null && (raw as Record<string, unknown>).kind === 'shoal-release-bundle';
    const outcome = isBundle
      ? await publishBundle(store, clock, deps.releaseTrust, await readBody(c, ReleaseBundle, raw), actor(c))
      : await createUnsignedRelease(store, clock, deps.releaseTrust, await readBody(c, CreateReleaseRequest, raw), actor(c));
    if (!outcome.ok) throw new ApiError(outcome.status, outcome.code, outcome.message, outcome.problems.length > 0 ? outcome.problems : undefined);
    return c.json(outcome.release, 201);
  });
  app.get('/releases', async (c) => c.json({ releases: await listReleases(store) }));
  app.get('/releases/:name', async (c) => {
    const release = await readRelease(store, c.req.param('name'));
    if (!release) throw new ApiError(404, 'unknown-release', `no release named "${c.req.param('name')}"`);
    return c.json(release);
  });

  app.get('/releases/:name/diff', async (c) => {
    const release = await readRelease(store, c.req.param('name'));
    if (!release) throw new ApiError(404, 'unknown-release', `no release named "${c.req.param('name')}"`);
    const report: ReleaseDiffReport = { release: release.name, ...(await releaseInsight(deps, release.hosts)) };
    return c.json(report);
  });

  app.post('/rollouts/plan', async (c) => {
    const spec = await readBody(c, RolloutSpec);
    return c.json(unwrap(await planReport(deps, engine, spec)));
  });
  app.post('/rollouts', async (c) => {
    const { skipPreflight, ...spec } = await readBody(c, StartRolloutRequest);
    const id = unwrap(await startChecked(deps, engine, spec, actor(c), skipPreflight));
    return c.json(await status(id), 201);
  });
  app.get('/rollouts', async (c) => c.json({ rollouts: await listRollouts(store) }));
  app.get('/rollouts/:id', async (c) => c.json(await status(c.req.param('id'))));
  app.get('/rollouts/:id/events', async (c) => {
    const id = c.req.param('id');
    await status(id);
    const query = EventQuery.parse(c.req.query());
    return c.json({ events: await rolloutEvents(store, id, query.afterId, query.limit) });
  });
  // Before '/:action': retry starts a new rollout (201) rather than moving this one.
  app.post('/rollouts/:id/retry', async (c) => {
    const id = c.req.param('id');
    // The body is optional: `{"skipPreflight": true}` as for a start.
    const empty = (await c.req.text()).trim() === '';
    const { skipPreflight } = await readBody(c, RetryRolloutRequest, empty ? {} : undefined);
    const retryId = unwrap(await retryChecked(deps, engine, id, actor(c), skipPreflight));
    return c.json(await status(retryId), 201);
  });
  app.post('/rollouts/:id/:action', async (c) => {
    const parsed = RolloutAction.safeParse(c.req.param('action'));
    if (!parsed.success) {
      throw new ApiError(404, 'not-found', `unknown rollout action "${c.req.param('action')}"; one of ${[...RolloutAction.options, 'retry'].join(', ')}`);
    }
    const id = c.req.param('id');
    unwrap(await engine.act(id, parsed.data, actor(c)));
    return c.json(await status(id));
  });

  /**
   * `event: status` carries the whole RolloutStatus; `event: audit` one audit event. Its SSE id is
   * where to resume after it (Last-Event-ID): the event's id, or lower while an event before it may
   * still appear (events-cursor.ts), so a resumed stream may repeat an event but never skips one.
   */
  app.get('/rollouts/:id/stream', async (c) => {
    const id = c.req.param('id');
    await status(id);
    const resumeAfter = Number(c.req.header('last-event-id') ?? c.req.query('afterId') ?? 0) || 0;
    // History through the rollout's own index, up to a little before the newest event; from there
    // the audit log is followed by a gap-aware cursor, whose first read lists those last ids (an
    // event still in flight at the start then arrives later, not never).
    const newest = (await newestEventCursor(store)).above;
    let cursor = eventCursorAt(Math.max(resumeAfter, newest - STREAM_LOOKBACK_IDS));
    return streamSSE(c, async (stream) => {
      const signal = wakeSignal();
      const unsubscribe = engine.onChange((changed) => {
        if (changed === id) signal.wake();
      });
      stream.onAbort(signal.wake);
      try {
        for (let after = resumeAfter; after < cursor.above && !stream.aborted; ) {
          const page = await rolloutEventsAmong(store, id, and(gt(store.t.events.id, after), lte(store.t.events.id, cursor.above))!, 1000);
          for (const event of page) await stream.writeSSE({ event: 'audit', id: String(event.id), data: JSON.stringify(event) });
          after = page.length === 1000 ? page.at(-1)!.id : cursor.above;
        }
        while (!stream.aborted) {
          for (let more = true; more && !stream.aborted; ) {
            const read = await readEvents(store, cursor, { batch: 1000, now: Date.now(), rows: (ids, limit) => rolloutEventsAmong(store, id, ids, limit) });
            const settled = settledThrough(read.cursor);
            for (const event of read.rows) await stream.writeSSE({ event: 'audit', id: String(Math.min(event.id, settled)), data: JSON.stringify(event) });
            cursor = read.cursor;
            more = read.more;
          }
          const current = await status(id);
          await stream.writeSSE({ event: 'status', data: JSON.stringify(current) });
          await signal.sleep(SSE_HEARTBEAT_MS);
        }
      } finally {
        unsubscribe();
      }
    });
  });

  return app;
}
