import pino, { type Logger } from 'pino';
import { prettyDestination } from './log-format.js';

export type { Logger };

/**
 * JSON-lines logs on stderr (stdout stays free for command output), one logger per component,
 * with secrets redacted wherever they appear in a logged object.
 */
export function createLogger(component: string, options: { level?: string; destination?: number; format?: 'json' | 'pretty' } = {}): Logger {
  const fd = options.destination ?? 2;
  return pino(
    {
      level: options.level ?? 'info',
      base: { component },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['token', '*.token', 'secretKey', '*.secretKey', 'authorization', '*.authorization', 'headers.authorization'],
        censor: '[redacted]',
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.format === 'pretty' ? prettyDestination(fd) : pino.destination({ fd, sync: false }),
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Ends the process once every log line is out. The destination is asynchronous, and a `flush`
 * callback can run before a busy pipe took the last lines (seen under load: "stopped" lost), so
 * the buffer is first written synchronously, with the callback as the fallback for a pipe that
 * would block.
 */
export function exitAfterLogs(logger: Logger, code: number): void {
  const stream = (logger as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym];
  try {
    stream?.flushSync?.();
  } catch {
    logger.flush(() => process.exit(code));
    return;
  }
  process.exit(code);
}
