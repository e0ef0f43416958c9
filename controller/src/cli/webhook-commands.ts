import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  WebhookCreated,
  WebhookDeliveries,
  WebhookEventType,
  WebhookList,
  WebhookRoutes,
  WebhookSummary,
  WebhookTestResult,
  type WebhookDelivery,
} from '../../../shared/src/webhook-api.js';
import { displayWebhookUrl } from '../dashboard/format.js';
import { json, list, str } from './args.js';
import type { Parsed } from './command-spec.js';
import { OperatorClient } from './client.js';
import { paint } from './colour.js';
import { CliError, type CliIo } from './context.js';
import { fit } from './format.js';
import { localTime } from './time.js';

export async function webhookAdd({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const events = list(values.event);
  for (const event of events) {
    if (event !== '*' && !WebhookEventType.safeParse(event).success) {
      throw new CliError(`--event ${JSON.stringify(event)} is not an event type; one of: *, ${WebhookEventType.options.join(', ')}`, 2);
    }
  }
  const secretFile = str(values['secret-file']);
  let secret: string | undefined;
  if (secretFile) {
    try {
      secret = readFileSync(secretFile, 'utf8').trim();
    } catch (error) {
      throw new CliError(`cannot read secret file ${secretFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  }
  const body = { url: positionals[0]!, ...(events.length > 0 ? { events } : {}), ...(secret ? { secret } : {}), description: str(values.description) ?? '' };
  const created = await OperatorClient.from(values, io).call('POST', WebhookRoutes.webhooks, WebhookCreated, body);
  if (values.json) return json(io, created);
  io.stdout(
    `added webhook ${created.id} for ${displayWebhookUrl(created.url)}\n` +
      `events: ${created.events.join(', ')}\n` +
      (secret ? '' : `secret: ${created.secret}\n  (shown once: receivers check X-Shoal-Signature with it)\n`) +
      `try it: shoal webhook test ${created.id}\n`,
  );
}

/** The oldest pending delivery: what the endpoint is stuck on, if anything. */
async function headOfQueue(client: OperatorClient, id: string): Promise<WebhookDelivery | null> {
  const { deliveries } = await client.call('GET', `${WebhookRoutes.deliveries(id)}?state=pending&limit=1000`, WebhookDeliveries);
  return deliveries.at(-1) ?? null;
}

function headLine(head: WebhookDelivery): string {
  const tried = head.attempts === 0 ? 'not tried yet' : `${head.attempts} attempt${head.attempts === 1 ? '' : 's'}, last error: ${head.lastError ?? '?'}`;
  const next = head.nextAttemptAt ? `; next ${localTime(head.nextAttemptAt)}` : '';
  return `    next up: ${head.type} (event ${head.eventId}), ${tried}${next}`;
}

export async function webhookList({ values }: Parsed, io: CliIo): Promise<void> {
  const client = OperatorClient.from(values, io);
  const { webhooks } = await client.call('GET', WebhookRoutes.webhooks, WebhookList);
  const heads = new Map<string, WebhookDelivery | null>();
  for (const hook of webhooks) heads.set(hook.id, hook.pending > 0 ? await headOfQueue(client, hook.id) : null);
  if (values.json) return json(io, { webhooks: webhooks.map((hook) => ({ ...hook, headOfQueue: heads.get(hook.id) ?? null })) });
  const colours = paint(io);
  const row = (cells: string[]) => [fit(cells[0]!, 16), fit(cells[1]!, 6), fit(cells[2]!, 7), fit(cells[3]!, 6), fit(cells[4]!, 37)].join('  ').trimEnd();
  const lines = [row(['ID', 'STATE', 'PENDING', 'FAILED', 'URL'])];
  for (const hook of webhooks) {
    const line = row([hook.id, hook.state, String(hook.pending), String(hook.failed), displayWebhookUrl(hook.url)]);
    lines.push(hook.state === 'dead' ? colours.red(line) : line);
    if (hook.state === 'dead') {
      lines.push(fit(`    dead since ${hook.deadSince ? localTime(hook.deadSince) : '?'}: ${hook.deadReason ?? ''}`, 80).trimEnd());
      lines.push(`    nothing is sent until it answers: shoal webhook test ${hook.id}`);
    }
    const head = heads.get(hook.id);
    if (head) lines.push(fit(headLine(head), 80).trimEnd());
  }
  if (webhooks.length === 0) lines.push('(no webhooks; add one with shoal webhook add URL)');
  io.stdout(`${lines.join('\n')}\n`);
}

export async function webhookRemove({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const id = positionals[0]!;
  await OperatorClient.from(values, io).call('DELETE', WebhookRoutes.webhook(id), z.undefined());
  if (values.json) json(io, { id, removed: true });
  else io.stdout(`removed webhook ${id} (its pending deliveries are dropped)\n`);
}

export async function webhookTest({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const id = positionals[0]!;
  const client = OperatorClient.from(values, io);
  const hook = await client.call('GET', WebhookRoutes.webhook(id), WebhookSummary);
  const result = await client.call('POST', WebhookRoutes.test(id), WebhookTestResult);
  if (values.json) return json(io, result);
  const where = displayWebhookUrl(hook.url);
  if (!result.delivered) throw new CliError(`test delivery to ${where} failed: ${result.error ?? 'no answer'}`);
  io.stdout(`delivered a test ping to ${where} (HTTP ${result.status})${result.revived ? '; the endpoint was dead and is active again' : ''}\n`);
}
