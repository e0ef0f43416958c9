import type { CommandSpec, OptionSpec } from './command-spec.js';

/** Help rendered from the command tables: usage, description, options by section, examples. */

const WIDTH = 80;
/** Where option descriptions start: after "  -o, --out FILE" and a gap. */
const OPTION_COLUMN = 26;
/** Where summaries start in `shoal --help`. */
const SUMMARY_COLUMN = 36;

/** Greedy word wrap: the first line after `first`, the rest after `indent`, none past WIDTH. */
export function wrap(text: string, first: string, indent: string): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = indent;
      empty = true;
    }
    line += `${empty ? '' : ' '}${word}`;
    empty = false;
  }
  lines.push(line);
  return lines;
}

/** One cell on the left, the text wrapped on the right; a wide cell puts the text on the next line. */
function columns(left: string, text: string, column: number): string[] {
  const indent = ' '.repeat(column);
  if (left.length >= column - 1) return [left, ...wrap(text, indent, indent)];
  return wrap(text, left.padEnd(column), indent);
}

function flag(name: string, option: OptionSpec): string {
  const value = option.type === 'string' ? ` ${option.value}` : '';
  return `${option.short ? `-${option.short}, ` : ''}--${name}${value}`;
}

function optionText(option: OptionSpec): string {
  if (option.type === 'boolean') return option.description;
  const notes = [option.required ? 'required' : '', option.default !== undefined ? `default: ${option.default}` : '', option.multiple ? 'repeatable' : ''];
  const extra = notes.filter(Boolean).join('; ');
  return extra ? `${option.description} (${extra})` : option.description;
}

/** "usage: shoal NAME ARGS --required X [options]", wrapped under the command's name. */
export function synopsis(command: CommandSpec): string {
  const args = command.positionals.map((name) => (name.endsWith('...') ? `[${name}]` : name));
  const options = Object.entries(command.options);
  const required = options.filter(([, o]) => o.type === 'string' && o.required).map(([name, o]) => flag(name, o));
  const optional = options.some(([, o]) => !(o.type === 'string' && o.required)) ? ['[options]'] : [];
  const head = `usage: shoal ${command.name}`;
  const words = [...args, ...required, ...optional];
  if (words.length === 0) return head;
  // Wrap whole flags ("--name NAME"), not their words.
  const lines: string[] = [];
  let line = head;
  for (const word of words) {
    if (line.length + 1 + word.length > WIDTH && line.trim() !== '') {
      lines.push(line);
      line = ' '.repeat(head.length);
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines.join('\n');
}

function description(text: string): string[] {
  return text.split('\n\n').flatMap((paragraph, i) => {
    const body = paragraph.split('\n').some((line) => line.startsWith(' ')) ? paragraph.split('\n') : wrap(paragraph, '', '');
    return i === 0 ? body : ['', ...body];
  });
}

function optionLines(command: CommandSpec): string[] {
  // "options" first, then the sections in the order the table names them.
  const sections = new Map<string, string[]>([['options', []]]);
  for (const [name, option] of Object.entries(command.options)) {
    const section = option.section ?? 'options';
    sections.set(section, [...(sections.get(section) ?? []), ...columns(`  ${flag(name, option)}`, optionText(option), OPTION_COLUMN)]);
  }
  return [...sections].filter(([, lines]) => lines.length > 0).flatMap(([section, lines], i) => [...(i > 0 ? [''] : []), `${section}:`, ...lines]);
}

function exampleLines(examples: string[]): string[] {
  const label = examples.length === 1 ? 'example: ' : 'examples: ';
  const indent = ' '.repeat(label.length);
  return examples.flatMap((example, i) => example.split('\n').map((line, j) => `${i === 0 && j === 0 ? label : indent}${line}`));
}

/** `shoal COMMAND --help`. */
export function commandHelp(command: CommandSpec): string {
  const parts = [[synopsis(command)], description(command.description), optionLines(command), exampleLines(command.examples)];
  return `${parts.filter((part) => part.length > 0).map((part) => part.join('\n')).join('\n\n')}\n`;
}

/** `shoal --help`: every command with its arguments and one line about it. */
export function usage(commands: readonly CommandSpec[], connection: CommandSpec['options']): string {
  const rows = commands.flatMap((command) => {
    const args = command.positionals.map((name) => (name.endsWith('...') ? `[${name}]` : name)).join(' ');
    return columns(`  ${command.name}${args ? ` ${args}` : ''}`, command.summary, SUMMARY_COLUMN);
  });
  const global = Object.entries(connection).flatMap(([name, option]) => columns(`  ${flag(name, option)}`, option.description, OPTION_COLUMN));
  return `${[
    'usage: shoal <command> [arguments] [options]   (shoal <command> --help for more)',
    '',
    'commands:',
    ...rows,
    '',
    'connection (every command that talks to the controller):',
    ...global,
  ].join('\n')}\n`;
}

/** `shoal rollout --help`: the usage of each subcommand of the group. */
export function groupUsage(commands: readonly CommandSpec[]): string {
  return `${commands.map((command) => `${synopsis(command)}\n${wrap(command.summary, '    ', '    ').join('\n')}`).join('\n')}\n`;
}
