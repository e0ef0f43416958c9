import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { displayWebhookUrl } from '../../../controller/src/dashboard/format.js';
import { WebhookDispatcher, type AttemptResult } from '../../../controller/src/webhooks/dispatcher.js';
import { createWebhook } from '../../../controller/src/webhooks/endpoints.js';
import { enqueueDeliveries } from '../../../controller/src/webhooks/enqueue.js';
import { registeredHost, storePath, testController, type TestController } from '../helpers.js';
import { signedIn } from './session-helpers.js';

// A chat-style URL: a login, a credential as a long path segment, and another in the query.
const SECRET_URL = 'https://bot:hunter2-password@hooks.example.com/services/T01/B02/abcdefghijklmnopqrstuvwx?token=query-secret-123#frag';
const SHOWN_URL = 'https://hooks.example.com/services/T01/B02/…';
const HMAC_SECRET = 'hmac-secret-of-the-endpoint-0123';

async function startRollout(ctl: TestController, release: string): Promise<string> {
  const created = await ctl.operator('/v1/releases', {
    method: 'POST',
    body: JSON.stringify({ name: release, hosts: [{ host: 'web-1', storePath: storePath('nixos-system-web-1', 'b') }] }),
  });
  expect(created.status).toBe(201);
  const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release, waves: ['100%'] }) });
  expect(started.status).toBe(201);
  return ((await started.json()) as { id: string }).id;
}

/** Sends every due delivery once through the real dispatcher: the receiver answers 500 (quoting the URL it was called at) first, then 204. */
async function sendDue(ctl: TestController, expected: number): Promise<AttemptResult[]> {
  let calls = 0;
  const results: AttemptResult[] = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const dispatcher = new WebhookDispatcher(
    {
      ...ctl.deps,
      send: async (url: string) => {
        calls += 1;
        return calls === 1 ? { status: 500, text: `no route for ${url}` } : { status: 204, text: '' };
      },
      onAttempt: (result) => {
        results.push(result);
        if (results.length === expected) done();
      },
    },
    { maxAttempts: 1, pollIntervalMs: 60_000 },
  );
  dispatcher.wake();
  await finished;
  await dispatcher.stop();
  return results;
}

describe('dashboard webhooks page', () => {
  let ctl: TestController;
  beforeEach(async () => {
    ctl = await testController();
    await registeredHost(ctl, 'web-1', ['web']);
  });
  afterEach(async () => await ctl.close());

  it('sends the page to the login form and refuses its live stream when nobody is signed in', async () => {
    const page = await ctl.app.request('/dashboard/webhooks');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe(`/dashboard/login?next=${encodeURIComponent('/dashboard/webhooks')}`);
    const live = await ctl.app.request('/dashboard/live/webhooks');
    expect(live.status).toBe(403);
    expect(live.headers.get('content-type')).not.toContain('event-stream');
  });

  it('says when there is no endpoint, and links the page from the navigation', async () => {
    const browser = await signedIn(ctl);
    const html = await (await browser.get('/dashboard/webhooks')).text();
    expect(html).toContain('No webhook endpoint yet.');
    expect(html).toContain('href="/dashboard/webhooks" aria-current="page"');
    expect(await (await browser.get('/dashboard')).text()).toContain('href="/dashboard/webhooks"');
  });

  it('lists each endpoint with its deliveries newest first: state, attempts, last result, rollout and host', async () => {
    const hook = await createWebhook(ctl.store, ctl.clock, { url: SECRET_URL, secret: HMAC_SECRET, events: ['*'], description: 'ops <channel>' }, 'operator:test-admin');
    const rolloutId = await startRollout(ctl, 'r1');
    const enqueued = await enqueueDeliveries(ctl.store, ctl.clock.now());
    expect(enqueued).toBeGreaterThanOrEqual(2);
    const results = await sendDue(ctl, enqueued);
    expect(results[0]).toBe('failed');
    expect(results.slice(1).every((result) => result === 'delivered')).toBe(true);
    // Written after the dispatcher stopped: waits, not tried yet.
    ctl.clock.advance(60_000);
    expect((await ctl.operator(`/v1/rollouts/${rolloutId}/pause`, { method: 'POST' })).status).toBe(200);
    expect(await enqueueDeliveries(ctl.store, ctl.clock.now())).toBe(1);

    const browser = await signedIn(ctl);
    const response = await browser.get('/dashboard/webhooks');
    expect(response.status).toBe(200);
    const html = await response.text();
    const section = html.slice(html.indexOf(`data-webhook="${hook.id}"`));
    expect(section).toContain(SHOWN_URL);
    expect(section).toContain('ops &lt;channel&gt;');
    expect(section).toContain('every event');
    expect(section).toContain('<caption class="sr-only">Recent deliveries to');
    expect(section).toContain('<th scope="col">Next attempt</th>');

    const rows = [...section.matchAll(/<tr data-delivery="[^"]+" data-state="(\w+)">([\s\S]*?)<\/tr>/g)].map((m) => ({ state: m[1]!, html: m[2]! }));
    expect(rows).toHaveLength(enqueued + 1);
    const eventIds = rows.map((row) => Number(/#(\d+)/.exec(row.html)![1]));
    expect(eventIds).toEqual([...eventIds].sort((a, b) => b - a));
    expect(rows[0]!.state).toBe('pending');
    expect(rows[0]!.html).toContain('rollout-paused');
    expect(rows[0]!.html).toContain('not tried yet');
    expect(rows[0]!.html).toContain('class="badge s-pending">pending<');
    const failed = rows[rows.length - 1]!;
    expect(failed.state).toBe('failed');
    expect(failed.html).toContain('class="badge s-failed">failed<');
    expect(failed.html).toContain(`HTTP 500: no route for ${SHOWN_URL}`);
    expect(failed.html).toContain(`href="/dashboard/rollouts/${rolloutId}"`);
    const issued = rows.find((row) => row.html.includes('rollout-host-issued'))!;
    expect(issued.state).toBe('delivered');
    expect(issued.html).toContain('href="/dashboard/hosts/web-1"');
    expect(issued.html).toContain('class="badge s-healthy">delivered<');
    expect(issued.html).toMatch(/<td data-label="Delivered">\d\d:\d\d:\d\d UTC<\/td>/);
    expect(section).toMatch(/<dt>Pending<\/dt><dd>1<\/dd>/);
    expect(section).toContain('1 failed');

    for (const secret of [HMAC_SECRET, 'hunter2-password', 'query-secret-123', 'abcdefghijklmnopqrstuvwx', 'frag', 'bot:']) {
      expect(html, secret).not.toContain(secret);
    }
  });

  it('shows webhook addresses without login, query, fragment or long path segments', () => {
    expect(displayWebhookUrl(SECRET_URL)).toBe(SHOWN_URL);
    expect(displayWebhookUrl('http://127.0.0.1:8080/hooks/shoal')).toBe('http://127.0.0.1:8080/hooks/shoal');
    expect(displayWebhookUrl('https://discord.com/api/webhooks/123456789012345678/AbCdEf-token_value_here')).toBe('https://discord.com/api/webhooks/…/…');
  });
});
