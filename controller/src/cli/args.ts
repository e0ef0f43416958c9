import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, GLOBAL_OPTIONS, type CliIo, type GlobalValues } from './context.js';
import { didYouMean } from './suggest.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = GlobalValues & Record<string, string | boolean | string[] | undefined>;

/**
 * Parses a command's arguments with the global options; `positionals` names the required ones,
 * and a trailing name ending in "..." takes any number more.
 */
export function parse<O extends Options>(args: string[], options: O, positionals: string[]): { values: Values; positionals: string[] } {
  const all: Options = { ...GLOBAL_OPTIONS, ...options };
  // Lenient parse with tokens, then our own checks: Node's strict-mode messages are not ours to parse.
  const parsed = parseArgs({ args, options: all, allowPositionals: true, strict: false, tokens: true });
  const names = Object.keys(all).map((name) => `--${name}`);
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    const option = all[token.name];
    if (option === undefined) throw new CliError(`unknown option ${token.rawName}${didYouMean(token.rawName, names)}`, 2);
    if (option.type === 'string' && token.value === undefined) throw new CliError(`option ${token.rawName} needs a value`, 2);
    if (option.type === 'boolean' && token.inlineValue) throw new CliError(`option ${token.rawName} takes no value`, 2);
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
