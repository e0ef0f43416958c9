import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `probe` until it returns something truthy and returns that. On timeout the error names
 * what was awaited, the last value seen (or error thrown) and any extra context.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) break;
    await sleep(options.intervalMs ?? 100);
  }
  const lastText = last instanceof Error ? `error: ${last.message}` : JSON.stringify(last);
  const context = options.context ? `\n${options.context()}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${lastText})${context}`);
}
