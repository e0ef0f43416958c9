import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, GLOBAL_OPTIONS, type CliIo, type GlobalValues } from './context.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = GlobalValues & Record<string, string | boolean | string[] | undefined>;

/**
 * Parses a command's arguments with the global options; `positionals` names the required ones,
 * and a trailing name ending in "..." takes any number more.
 */
export function parse<O extends Options>(args: string[], options: O, positionals: string[]): { values: Values; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliError((error as Error).message.split('. To specify')[0]!.split('\n')[0]!, 2);
  }
  const variadic = positionals.at(-1)?.endsWith('...') ?? false;
  const required = variadic ? positionals.length - 1 : positionals.length;
  const count = parsed.positionals.length;
  if (count < required || (!variadic && count > required)) {
    const want = positionals.length === 0 ? 'no arguments' : positionals.join(' ');
    throw new CliError(`expected ${want}, got ${count === 0 ? 'none' : parsed.positionals.join(' ')}`, 2);
  }
  return parsed as { values: Values; positionals: string[] };
}

export function json(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** "3" → 3; anything else names the flag. */
export function integer(text: string, flag: string, min: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
    throw new CliError(`${flag} must be ${min === 0 ? 'a whole number' : `a whole number of at least ${min}`}, got ${JSON.stringify(text)}`, 2);
  }
  return value;
}

/** "a,b, c" → ["a", "b", "c"]; repeated flags add up. */
export function list(value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
  return items.flatMap((item: string) => item.split(',')).map((s) => s.trim()).filter((s) => s.length > 0);
}
