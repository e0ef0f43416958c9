import { API_OPTIONS, type CommandSpec } from '../command-spec.js';
import * as webhooks from '../webhook-commands.js';

/** Webhooks: endpoints that receive rollout events as signed JSON. */

export const WEBHOOK_COMMANDS: CommandSpec[] = [
  {
    name: 'webhook add',
    summary: 'send rollout events to a URL',
    positionals: ['URL'],
    options: {
      event: { type: 'string', value: 'TYPE', multiple: true, description: 'an event type (rollout-halted, rollout-host-failed, ...) or * for all' },
      description: { type: 'string', value: 'D', description: 'a line about the endpoint' },
      'secret-file': { type: 'string', value: 'FILE', description: 'the signing secret (default: a new one, printed once)' },
      ...API_OPTIONS,
    },
    description: `Adds an endpoint that receives rollout events as signed JSON POSTs (X-Shoal-Signature:
sha256=HMAC of the body with the secret). Without --event: all but the per-host issued/healthy
events. Every body has a "text" line that Slack, Mattermost, Matrix (hookshot) and Discord (its
URL ending in /slack) post as it is.`,
    examples: ['shoal webhook add https://hooks.slack.com/services/T0/B0/XXXX \\\n  --event rollout-halted --event rollout-host-failed'],
    run: webhooks.webhookAdd,
  },
  {
    name: 'webhook list',
    summary: 'endpoints and their queues',
    positionals: [],
    options: { ...API_OPTIONS },
    description: `Lists endpoints: active or dead, deliveries pending and failed, and for each endpoint
with a queue the delivery at its head (attempts, last error, next try).`,
    examples: ['shoal webhook list'],
    run: webhooks.webhookList,
  },
  {
    name: 'webhook rm',
    summary: 'remove an endpoint',
    positionals: ['ID'],
    options: { ...API_OPTIONS },
    description: 'Removes an endpoint; its pending deliveries are dropped.',
    examples: ['shoal webhook rm wh-1a2b3c4d5e6f'],
    run: webhooks.webhookRemove,
  },
  {
    name: 'webhook test',
    summary: 'send a signed ping now',
    positionals: ['ID'],
    options: { ...API_OPTIONS },
    description: `Sends a signed ping (X-Shoal-Event: ping) now and says whether it arrived. A dead
endpoint (given up after hours without an answer) that answers is active again; events from then
on are delivered.`,
    examples: ['shoal webhook test wh-1a2b3c4d5e6f'],
    run: webhooks.webhookTest,
  },
];
