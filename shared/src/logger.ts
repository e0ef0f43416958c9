import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * JSON-lines logs on stderr (stdout stays free for command output), one logger per component,
 * with secrets redacted wherever they appear in a logged object.
 */
export function createLogger(component: string, options: { level?: string; destination?: number } = {}): Logger {
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
    pino.destination({ fd: options.destination ?? 2, sync: false }),
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
