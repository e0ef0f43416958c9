import { WebhookEventType, type WebhookDelivery, type WebhookSummary } from '../../../shared/src/webhook-api.js';
import { clockTime, displayWebhookUrl } from './format.js';
import { Badge, BASE, Layout, LiveState } from './layout.js';
import type { EventSubject } from './queries.js';
import { rolloutPath } from './rollout-page.js';
import type { DashboardSession } from './sessions.js';

export const RECENT_DELIVERIES = 20;

export interface WebhookView {
  hook: WebhookSummary;
  /** Newest first, at most RECENT_DELIVERIES. */
  deliveries: Array<WebhookDelivery & EventSubject>;
}

const STATE_KIND: Record<WebhookDelivery['state'], string> = { delivered: 'healthy', pending: 'pending', failed: 'failed' };

/** The last attempt's outcome, with the endpoint's full URL (should an error quote it) cut down like everywhere else. */
function lastResult(delivery: WebhookDelivery, url: string): string {
  if (delivery.attempts === 0) return 'not tried yet';
  const error = delivery.lastError?.split(url).join(displayWebhookUrl(url)) ?? null;
  if (error) return error;
  return delivery.lastStatus !== null ? `HTTP ${delivery.lastStatus}` : 'no answer';
}

function EventFilter(props: { events: WebhookEventType[] }) {
  if (WebhookEventType.options.every((type) => props.events.includes(type))) return <span>every event</span>;
  return (
    <>
      {props.events.map((type) => (
        <span class="tag">{type}</span>
      ))}
    </>
  );
}

function Deliveries(props: { view: WebhookView; label: string; now: number }) {
  const { hook, deliveries } = props.view;
  if (deliveries.length === 0) return <p class="muted">No delivery yet: it gets the events written after it was added.</p>;
  return (
    <table class="cards">
      <caption class="sr-only">Recent deliveries to {props.label}, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Event</th>
          <th scope="col">Rollout</th>
          <th scope="col">Host</th>
          <th scope="col">State</th>
          <th scope="col">Attempts</th>
          <th scope="col">Last result</th>
          <th scope="col">Next attempt</th>
          <th scope="col">Delivered</th>
        </tr>
      </thead>
      <tbody>
        {deliveries.map((delivery) => (
          <tr data-delivery={delivery.id} data-state={delivery.state}>
            <td data-label="Event">
              {delivery.type} <span class="muted">#{delivery.eventId}</span>
            </td>
            <td data-label="Rollout">{delivery.rolloutId ? <a href={rolloutPath(delivery.rolloutId)}>{delivery.rolloutId}</a> : '—'}</td>
            <td data-label="Host">{delivery.host ? <a href={`${BASE}/hosts/${encodeURIComponent(delivery.host)}`}>{delivery.host}</a> : '—'}</td>
            <td data-label="State">
              <Badge kind={STATE_KIND[delivery.state]}>{delivery.state}</Badge>
            </td>
            <td data-label="Attempts">{delivery.attempts}</td>
            <td data-label="Last result">
              {lastResult(delivery, hook.url)}
              {delivery.lastAttemptAt ? <div class="muted">at {clockTime(delivery.lastAttemptAt, props.now)}</div> : null}
            </td>
            <td data-label="Next attempt">{delivery.nextAttemptAt ? clockTime(delivery.nextAttemptAt, props.now) : '—'}</td>
            <td data-label="Delivered">{delivery.deliveredAt ? clockTime(delivery.deliveredAt, props.now) : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Endpoint(props: { view: WebhookView; now: number }) {
  const { hook } = props.view;
  const label = displayWebhookUrl(hook.url);
  const headingId = `webhook-${hook.id}`;
  return (
    <section class="webhook" data-webhook={hook.id} aria-labelledby={headingId}>
      <h2 id={headingId} class="mono">
        {label}
      </h2>
      <dl class="stats">
        <div>
          <dt>Description</dt>
          <dd>{hook.description || <span class="muted">none</span>}</dd>
        </div>
        <div>
          <dt>Pending</dt>
          <dd>{hook.pending}</dd>
        </div>
        <div>
          <dt>Failed</dt>
          <dd>{hook.failed > 0 ? <Badge kind="failed">{hook.failed} failed</Badge> : 0}</dd>
        </div>
        <div>
          <dt>Added</dt>
          <dd>
            {clockTime(hook.createdAt, props.now)} <span class="muted">by {hook.createdBy}</span>
          </dd>
        </div>
      </dl>
      <p>
        <span class="muted">Events:</span> <EventFilter events={hook.events} />
      </p>
      <Deliveries view={props.view} label={label} now={props.now} />
    </section>
  );
}

export function WebhookList(props: { views: WebhookView[]; now: number }) {
  if (props.views.length === 0) {
    return (
      <p>
        No webhook endpoint yet. Add one with <code>POST /v1/webhooks</code>.
      </p>
    );
  }
  return (
    <>
      {props.views.map((view) => (
        <Endpoint view={view} now={props.now} />
      ))}
    </>
  );
}

export function webhookFragments(views: WebhookView[], now: number) {
  return { 'webhook-list': <WebhookList views={views} now={now} /> };
}

export function WebhooksPage(props: { session: DashboardSession; views: WebhookView[]; now: number }) {
  return (
    <Layout title="Webhooks" section="webhooks" session={props.session}>
      <div data-live={`${BASE}/live/webhooks`}>
        <h1>Webhooks</h1>
        <LiveState renderedAt={new Date(props.now).toISOString()} />
        <p class="muted">
          Every endpoint and its last {RECENT_DELIVERIES} deliveries, newest first. Addresses show origin and path only; long path parts are hidden
          (chat services keep the credential there).
        </p>
        <div id="webhook-list">{webhookFragments(props.views, props.now)['webhook-list']}</div>
      </div>
    </Layout>
  );
}
