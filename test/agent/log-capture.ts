import pino, { type Logger } from 'pino';

/** A real pino logger whose JSON lines are kept in memory, for tests that check what was logged. */
export function captureLogger(): { logger: Logger; entries: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { logger, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}
