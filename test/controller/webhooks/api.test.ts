import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookCreated, WebhookList } from '../../../shared/src/webhook-api.js';
import { DEFAULT_WEBHOOK_EVENTS } from '../../../shared/src/webhook-api.js';
import { testController, type TestController } from '../helpers.js';

const controllers: TestController[] = [];
afterEach(async () => {
  for (const ctl of controllers.splice(0)) await ctl.close();
});

async function controller(): Promise<TestController> {
  const ctl = await testController();
  controllers.push(ctl);
  return ctl;
}

const post = (ctl: TestController, body: unknown) => ctl.operator('/v1/webhooks', { method: 'POST', body: JSON.stringify(body) });
const errorOf = async (response: Response) => ((await response.json()) as { error: { code: string; message: string } }).error;

describe('webhook API', () => {
  it('refuses requests without an operator token', async () => {
    const ctl = await controller();
    for (const [method, path] of [['GET', '/v1/webhooks'], ['POST', '/v1/webhooks'], ['DELETE', '/v1/webhooks/wh-1'], ['GET', '/v1/webhooks/wh-1/deliveries']] as const) {
      const response = await ctl.app.request(path, { method });
      expect(response.status, `${method} ${path}`).toBe(401);
    }
  });

  it('creates an endpoint, shows its generated secret once, and lists it without the secret', async () => {
    const ctl = await controller();
    const response = await post(ctl, { url: 'https://hooks.example.com/shoal', description: 'ops channel' });
    expect(response.status).toBe(201);
    const created = (await response.json()) as WebhookCreated;
    expect(created.secret.length).toBeGreaterThanOrEqual(32);
    expect(created.events).toEqual([...DEFAULT_WEBHOOK_EVENTS]);
    expect(created).toMatchObject({ url: 'https://hooks.example.com/shoal', description: 'ops channel', createdBy: 'operator:test-admin', pending: 0, failed: 0 });

    const listed = (await (await ctl.operator('/v1/webhooks')).json()) as WebhookList;
    expect(listed.webhooks.map((w) => w.id)).toEqual([created.id]);
    expect(JSON.stringify(listed)).not.toContain(created.secret);
    const one = await (await ctl.operator(`/v1/webhooks/${created.id}`)).json();
    expect(one).not.toHaveProperty('secret');

    const all = (await (await post(ctl, { url: 'https://hooks.example.com/all', events: ['*'], secret: 'a-secret-of-16-chars' })).json()) as WebhookCreated;
    expect(all.events).toContain('rollout-host-issued');
    expect(all.secret).toBe('a-secret-of-16-chars');
  });

  it('names the field that is wrong', async () => {
    const ctl = await controller();
    const cases: Array<[unknown, string]> = [
      [{ url: 'ftp://example.com/x' }, 'url'],
      [{ url: 'https://example.com', events: ['rollout-exploded'] }, 'events'],
      [{ url: 'https://example.com', secret: 'short' }, 'secret'],
      [{ url: 'https://example.com', colour: 'red' }, 'colour'],
    ];
    for (const [body, field] of cases) {
      const response = await post(ctl, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect((await errorOf(response)).message).toContain(field);
    }
    expect((await (await ctl.operator('/v1/webhooks')).json()) as WebhookList).toEqual({ webhooks: [] });
  });

  it('deletes an endpoint, and answers 404 for one that does not exist', async () => {
    const ctl = await controller();
    const created = (await (await post(ctl, { url: 'https://example.com/h' })).json()) as WebhookCreated;
    expect((await ctl.operator(`/v1/webhooks/${created.id}/deliveries`)).status).toBe(200);
    expect((await ctl.operator(`/v1/webhooks/${created.id}`, { method: 'DELETE' })).status).toBe(204);
    const again = await ctl.operator(`/v1/webhooks/${created.id}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect((await errorOf(again)).code).toBe('unknown-webhook');
    expect((await ctl.operator(`/v1/webhooks/${created.id}/deliveries`)).status).toBe(404);
  });
});
