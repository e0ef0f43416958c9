import type { Logger } from '../../shared/src/logger.js';

/** HTTP answers that say "this controller cannot serve you now", not "your request is wrong": a proxy without a backend, a replica without its database. */
const UNAVAILABLE = new Set([502, 503, 504]);

export function unavailableStatus(status: number): boolean {
  return UNAVAILABLE.has(status);
}

/**
 * The controller URLs an agent may use (controller replicas, issue 16) and the one it uses now.
 * The HTTP client and the websocket share one instance, so both move together: when the current
 * controller cannot be reached, the next in the list is used from then on (wrapping around), and
 * the callers' own backoff paces the attempts. There is no failing back: a controller that works
 * is kept until it fails.
 */
export class ControllerEndpoints {
  private index = 0;

  constructor(
    readonly urls: readonly string[],
    private readonly logger?: Logger,
  ) {
    if (urls.length === 0) throw new Error('ControllerEndpoints: no controller URL');
  }

  get current(): string {
    return this.urls[this.index]!;
  }

  /**
   * `url` failed (refused, unreachable, unavailable): move on, unless another caller already moved
   * away from it (the websocket and a poll often notice the same outage).
   */
  failed(url: string, reason: string): void {
    if (this.urls.length < 2 || url !== this.current) return;
    this.index = (this.index + 1) % this.urls.length;
    this.logger?.warn({ from: url, to: this.current, reason }, 'controller unavailable, trying the next one');
  }
}

/** What the agent config lists: `controllerUrl` first, then `controllerUrls`, each once. */
export function controllerUrlsOf(config: { controllerUrl?: string | undefined; controllerUrls: readonly string[] }): string[] {
  return [...new Set([...(config.controllerUrl ? [config.controllerUrl] : []), ...config.controllerUrls])];
}
