import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { CommandSpec, OptionTable, Parsed } from './command-spec.js';
import { CliError, type CliIo } from './context.js';
import { didYouMean } from './suggest.js';

export type { Values } from './command-spec.js';

/** The table in the form node:util's parseArgs takes; a boolean is false unless given. */
export function parseArgsOptions(table: OptionTable): NonNullable<ParseArgsConfig['options']> {
  return Object.fromEntries(
    Object.entries(table).map(([name, option]) => {
      const short = option.short === undefined ? {} : { short: option.short };
      if (option.type === 'boolean') return [name, { type: 'boolean', default: false, ...short }];
      return [name, { type: 'string', ...short, ...(option.multiple ? { multiple: true } : {}), ...(option.default === undefined ? {} : { default: option.default }) }];
    }),
  );
}

/** Checks a command's arguments against its table: every refusal names the option or argument. */
export function parse(args: string[], command: Pick<CommandSpec, 'name' | 'options' | 'positionals'>): Parsed {
  const table = command.options;
  // Lenient parse with tokens, then our own checks: Node's strict-mode messages are not ours to parse.
  const parsed = parseArgs({ args, options: parseArgsOptions(table), allowPositionals: true, strict: false, tokens: true });
  const names = Object.keys(table).map((name) => `--${name}`);
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    const option = table[token.name];
    if (option === undefined) throw new CliError(`unknown option ${token.rawName}${didYouMean(token.rawName, names)}`, 2);
    if (option.type === 'string' && token.value === undefined) throw new CliError(`option ${token.rawName} needs a value`, 2);
    if (option.type === 'boolean' && token.inlineValue) throw new CliError(`option ${token.rawName} takes no value`, 2);
  }
  for (const [name, option] of Object.entries(table)) {
    if (option.type === 'string' && option.required && parsed.values[name] === undefined) {
      throw new CliError(`${command.name} needs --${name} ${option.value} (${option.description})`, 2);
    }
  }
  const last = command.positionals.at(-1);
  const variadic = last?.endsWith('...') === true;
  const optional = last?.startsWith('[') === true;
  const required = variadic || optional ? command.positionals.length - 1 : command.positionals.length;
  const most = variadic ? Infinity : command.positionals.length;
  const count = parsed.positionals.length;
  if (count < required || count > most) {
    const want = command.positionals.length === 0 ? 'no arguments' : command.positionals.join(' ');
    throw new CliError(`expected ${want}, got ${count === 0 ? 'none' : parsed.positionals.join(' ')}`, 2);
  }
  return parsed as Parsed;
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
