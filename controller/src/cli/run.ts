import * as commands from './commands.js';
import { CliError, type CliIo } from './context.js';

export const USAGE = `usage: shoal <command> [options]

  keygen --name NAME --out FILE          generate the release key (prints the public key)
  token create --state-dir DIR [--name N] create an operator token (opens the database)
  token list --state-dir DIR | token revoke --state-dir DIR ID
  enroll-token create [--ttl 1h] [--max-uses N] [--tag T]...
  host register NAME --public-key B64 [--tag T]...
  set HOST STOREPATH [--action safe-switch|switch|boot|dry-activate]
  status                                 fleet status
  history HOST [--limit N]               a host's event history

global: --controller URL (SHOAL_CONTROLLER), --token T (SHOAL_TOKEN),
        --token-file F (SHOAL_TOKEN_FILE), --json
`;

type Command = (args: string[], io: CliIo) => Promise<void>;

const TABLE: Record<string, Command | Record<string, Command>> = {
  keygen: commands.keygen,
  token: { create: commands.tokenCreate, list: commands.tokenList, revoke: commands.tokenRevoke },
  'enroll-token': { create: commands.enrollTokenCreate },
  host: { register: commands.hostRegister },
  set: commands.setDesired,
  status: commands.status,
  history: commands.history,
};

/** Runs one CLI invocation; returns the exit status. Errors become one line on stderr. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.stderr : io.stdout)(USAGE);
    return name === undefined ? 2 : 0;
  }
  try {
    const entry = TABLE[name];
    if (!entry) throw new CliError(`unknown command ${JSON.stringify(name)}; see shoal --help`, 2);
    let command: Command;
    let args = rest;
    if (typeof entry === 'function') command = entry;
    else {
      const [sub, ...subArgs] = rest;
      const found = sub === undefined ? undefined : entry[sub];
      if (!found) throw new CliError(`${name} needs a subcommand: ${Object.keys(entry).join(', ')}`, 2);
      command = found;
      args = subArgs;
    }
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout(USAGE);
      return 0;
    }
    await command(args, io);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr(`shoal: ${error.message}\n`);
      return error.exitCode;
    }
    io.stderr(`shoal: internal error: ${(error as Error).stack ?? String(error)}\n`);
    return 70;
  }
}
