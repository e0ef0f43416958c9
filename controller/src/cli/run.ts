import { parse } from './args.js';
import { CONNECTION_OPTIONS, type CommandSpec } from './command-spec.js';
import { CliError, type CliIo } from './context.js';
import { commandHelp, groupUsage, usage } from './help.js';
import { didYouMean } from './suggest.js';
import { COMMANDS } from './table/index.js';

export const USAGE = usage(COMMANDS, CONNECTION_OPTIONS);

/** "rollout" → its subcommands; "keygen" → itself (a command without subcommands). */
const GROUPS = new Map<string, CommandSpec[]>();
for (const command of COMMANDS) {
  const group = command.name.split(' ')[0]!;
  GROUPS.set(group, [...(GROUPS.get(group) ?? []), command]);
}

/** Which command `argv` names, and the arguments left for it; a refusal names what was wrong. */
function find(name: string, rest: string[], io: CliIo): { command: CommandSpec; args: string[] } | 'answered' {
  const group = GROUPS.get(name);
  if (!group) throw new CliError(`unknown command ${JSON.stringify(name)}${didYouMean(name, [...GROUPS.keys()])}; see shoal --help`, 2);
  if (group.length === 1 && group[0]!.name === name) return { command: group[0]!, args: rest };
  const [sub, ...args] = rest;
  const command = group.find((c) => c.name === `${name} ${sub}`);
  if (command) return { command, args };
  if (sub === '--help' || sub === '-h') {
    io.stdout(groupUsage(group));
    return 'answered';
  }
  const subcommands = group.map((c) => c.name.slice(name.length + 1));
  if (sub === undefined || sub.startsWith('-')) throw new CliError(`${name} needs a subcommand: ${subcommands.join(', ')}`, 2);
  throw new CliError(`unknown subcommand "${name} ${sub}"${didYouMean(sub, subcommands)}; one of: ${subcommands.join(', ')}`, 2);
}

/** Runs one CLI invocation; returns the exit status. Errors become one line on stderr. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [first, ...afterFirst] = argv;
  if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && afterFirst.length === 0)) {
    (first === undefined ? io.stderr : io.stdout)(USAGE);
    return first === undefined ? 2 : 0;
  }
  // `shoal help rollout start` is `shoal rollout start --help`.
  const [name, ...rest] = first === 'help' ? [afterFirst[0]!, ...afterFirst.slice(1), '--help'] : [first, ...afterFirst];
  try {
    const found = find(name, rest, io);
    if (found === 'answered') return 0;
    const { command, args } = found;
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout(commandHelp(command));
      return 0;
    }
    await command.run(parse(args, command), io);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr(`shoal: ${error.message}\n${error.details.map((line) => `  ${line}\n`).join('')}`);
      return error.exitCode;
    }
    io.stderr(`shoal: internal error: ${(error as Error).stack ?? String(error)}\n`);
    return 70;
  }
}
