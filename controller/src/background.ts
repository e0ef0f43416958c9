import type { Logger } from '../../shared/src/logger.js';

/**
 * The one place the controller handles errors of work that no request awaits: timers (rollout
 * ticks, renewal, webhook dispatch) and websocket listeners. Such an error (a database that
 * went read-only, a table that is gone, a bug) would otherwise escape into the event loop and
 * end the process with a bare stack trace; here it is logged, structured and with the task's
 * context, and the controller keeps serving. The next tick tries again.
 */
export function runBackground(logger: Logger, task: string, work: () => unknown, context: Record<string, unknown> = {}): void {
  const failed = (error: unknown): void => logger.error({ err: error, task, ...context }, 'background work failed');
  try {
    const result = work();
    if (result instanceof Promise) result.catch(failed);
  } catch (error) {
    failed(error);
  }
}
