/**
 * The one exponential backoff: agent websocket reconnects and polling, the agent's outbox, webhook
 * deliveries. `attempt` counts from 0 (the first retry waits up to `baseMs`).
 */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

/** The wait before retry `attempt`: min(maxMs, baseMs * 2^attempt). The exponent is bounded so a long outage cannot overflow it. */
export function backoffCeiling(attempt: number, backoff: Backoff): number {
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
}

/**
 * Full jitter (AWS architecture blog): uniformly random in [0, backoffCeiling), so many agents
 * cut off together do not come back together.
 */
export function jitteredBackoff(attempt: number, backoff: Backoff & { random: () => number }): number {
  return Math.floor(backoff.random() * backoffCeiling(attempt, backoff));
}
