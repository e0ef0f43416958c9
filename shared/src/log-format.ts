import { writeSync } from 'node:fs';

/**
 * How logs are written: 'json' (one object per line, for journald and log shippers) or 'pretty'
 * (one readable line per entry, for a person at a terminal). 'auto' picks pretty when stderr is a
 * terminal, so a service under systemd logs JSON and the same binary in a shell does not.
 */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function parseLogFormat(text: string | undefined): LogFormat {
  const value = text ?? 'auto';
  if (!(LOG_FORMATS as readonly string[]).includes(value)) throw new Error(`--log-format must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as LogFormat;
}

export function resolveLogFormat(format: LogFormat, stderrIsTTY: boolean): 'json' | 'pretty' {
  return format === 'auto' ? (stderrIsTTY ? 'pretty' : 'json') : format;
}

const SHOWN_ELSEWHERE = new Set(['time', 'level', 'component', 'msg', 'host', 'pid', 'hostname']);

/** '{"level":"info","time":"…T12:00:01.234Z","component":"controller","msg":"x","a":1}' → '12:00:01 INFO  controller: x a=1' */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const time = typeof entry.time === 'string' ? new Date(entry.time).toTimeString().slice(0, 8) : '--:--:--';
  const level = String(entry.level ?? '').toUpperCase().padEnd(5);
  const who = `${String(entry.component ?? '')}${entry.host ? `[${String(entry.host)}]` : ''}`;
  const fields = Object.entries(entry)
    .filter(([key]) => !SHOWN_ELSEWHERE.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`);
  return `${time} ${level} ${who}: ${String(entry.msg ?? '')}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}\n`;
}

/** A pino destination that writes each entry as a pretty line (synchronously: a terminal is there to be read). */
export function prettyDestination(fd: number): { write(chunk: string): void } {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) writeSync(fd, prettyLine(line));
    },
  };
}
