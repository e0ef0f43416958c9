import { CliError } from './context.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90s", "30m", "1h", "7d" or plain seconds → seconds. */
export function parseDurationSeconds(text: string, flag: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) throw new CliError(`${flag} must be a duration like 30m, 1h or 7d, got ${JSON.stringify(text)}`);
  return Number(match[1]) * UNITS[match[2] || 's']!;
}
