import { HostEvent } from '../../../shared/src/operator-api.js';
import { RolloutRoutes, RolloutStatus } from '../../../shared/src/rollout-api.js';
import type { OperatorClient } from './client.js';
import { paint } from './colour.js';
import { CliError, type CliIo } from './context.js';
import { eventLine, isTerminal, statusLines } from './rollout-format.js';
import { readSse } from './sse.js';

export interface WatchOptions {
  json: boolean;
  /** Silence after which the stream counts as dead; the server sends a status every 15 s. */
  silenceMs?: number;
  /** How long to keep reconnecting to a controller that went away (it may be restarting). */
  reconnectForMs?: number;
}

const TAIL = 6;

/**
 * Follows a rollout's event stream until it ends and returns its final status. On a terminal the
 * view is redrawn in place (bake time counts down between updates); elsewhere each change is
 * one line, so logs of CI jobs read top to bottom. With --json, one JSON object per line.
 */
export async function watchRollout(client: OperatorClient, id: string, io: CliIo, options: WatchOptions): Promise<RolloutStatus> {
  const live = io.isTTY === true && !options.json;
  const colours = paint(io);
  const silenceMs = options.silenceMs ?? 45_000;
  const reconnectForMs = options.reconnectForMs ?? 60_000;
  const tail: string[] = [];
  let failingSince: number | null = null;
  let lastEventId = 0;
  let latest: { status: RolloutStatus; at: number } | null = null;
  let drawn = 0;

  const draw = () => {
    if (!live || !latest) return;
    const elapsed = Math.floor((Date.now() - latest.at) / 1000);
    const bake = latest.status.bakeRemainingSeconds === null ? null : Math.max(0, latest.status.bakeRemainingSeconds - elapsed);
    const paused = latest.status.state !== 'running';
    const view = `${statusLines(latest.status, colours, paused ? latest.status.bakeRemainingSeconds : bake)}${tail.length > 0 ? `\n${tail.join('\n')}\n` : ''}`;
    io.stdout(`${drawn > 0 ? `\x1b[${drawn}F\x1b[J` : ''}${view}`);
    drawn = view.split('\n').length - 1;
  };
  const ticker = live ? setInterval(draw, 1000) : null;

  /** One connection: the final status once the rollout ended, or null when the stream broke off. */
  const follow = async (): Promise<RolloutStatus | null> => {
    const abort = new AbortController();
    let final: RolloutStatus | null = null;
    let watchdog = setTimeout(() => abort.abort(), silenceMs);
    try {
      const response = await client.stream(RolloutRoutes.stream(id), { 'last-event-id': String(lastEventId) }, abort.signal);
      failingSince = null;
      for await (const message of readSse(response.body!)) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => abort.abort(), silenceMs);
        if (message.event === 'audit') {
          const event = HostEvent.parse(JSON.parse(message.data));
          // The SSE id is where to resume (it may be below the event's own id: events-cursor.ts).
          lastEventId = Number(message.id ?? event.id) || event.id;
          if (options.json) io.stdout(`${JSON.stringify({ event: 'audit', data: event })}\n`);
          else if (live) {
            tail.push(eventLine(event));
            tail.splice(0, Math.max(0, tail.length - TAIL));
          }
          else io.stdout(`${eventLine(event)}\n`);
        } else if (message.event === 'status') {
          const status = RolloutStatus.parse(JSON.parse(message.data));
          latest = { status, at: Date.now() };
          if (options.json) io.stdout(`${JSON.stringify({ event: 'status', data: status })}\n`);
          draw();
          if (isTerminal(status.state)) {
            final = status;
            break;
          }
        }
      }
      return final;
    } catch (error) {
      if (final) return final;
      // A refusal (unknown rollout, bad token) will not get better by retrying; a broken connection may.
      if (error instanceof CliError && !error.message.startsWith('cannot reach')) throw error;
      return null;
    } finally {
      clearTimeout(watchdog);
      abort.abort();
    }
  };
  if (!live && !options.json) io.stdout(`watching rollout ${id}\n`);

  try {
    for (;;) {
      const final = await follow();
      if (final) {
        if (!live && !options.json) io.stdout(`\n${statusLines(final, colours)}`);
        return final;
      }
      failingSince ??= Date.now();
      if (Date.now() - failingSince > reconnectForMs) {
        throw new CliError(`lost the event stream of rollout ${id} at ${client.baseUrl} for ${Math.round(reconnectForMs / 1000)}s; it may still be running (shoal rollout status ${id})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } finally {
    if (ticker) clearInterval(ticker);
  }
}
