import * as commands from './commands.js';
import { CliError, type CliIo } from './context.js';
import { HELP } from './help.js';
import * as lifecycle from './lifecycle-commands.js';
import * as reboot from './reboot-commands.js';
import * as ci from './release-ci-commands.js';
import * as releases from './release-commands.js';
import * as rollouts from './rollout-commands.js';
import { didYouMean } from './suggest.js';
import * as webhooks from './webhook-commands.js';

export const USAGE = `usage: shoal <command> [options]        (shoal <command> --help for more)

  keygen --name NAME --out FILE          generate a controller or CI release key
  key show FILE                          print the public half of a key
  token create [--state-dir DIR] [--name N] [--scope read|deploy|admin|ci]
  token list [--state-dir DIR] | token revoke [--state-dir DIR] ID
  enroll-token create [--ttl 1h] [--max-uses N] [--tag T]...
  enroll-token list | enroll-token revoke ID
  host register NAME --public-key B64 [--tag T]...
  host diff HOST [--target PATH]         what it runs against what it should run
  host rm NAME | host rekey NAME --public-key B64
  host pause NAME | host resume NAME     hold a host back from rollouts and set
  host show NAME                         one host, with its reboot settings
  host set-reboot NAME [--policy P] [--window W]... [--windows inherit|always]
  tag set-reboot TAG [--policy P] [--window W]... [--max-rebooting N|none]
  tag list                               tags with reboot settings
  host unknown | host adopt NAME [--fingerprint FP] [--tag T]...
  backup --out FILE                      online copy of the controller database
  set HOST STOREPATH [--action safe-switch|switch|boot|dry-activate] [--force]
  status [--failed] [--tag T] [--rollout ID] [--wide]   fleet status
  history HOST [--limit N]               a host's event history
  release build --flake DIR[#ATTR] --name NAME   evaluate and build (CI)
  release push-closures --to CACHE_URL [--cache-key F]   nix copy
  release sign --key F [--floor N] BUILD.json    sign offline
  release publish BUNDLE.json                    upload a signed release
  release publish --flake DIR --cache URL --key F --name N   all four steps
  release create NAME (--file F | HOST=PATH...) [--description D] [--source REV]
  release list | release show NAME
  rollout plan RELEASE [spec flags]      dry run: waves, fleet diff, preflight
  rollout start RELEASE [spec flags] [--watch] [--skip-preflight]
  rollout status ID | rollout watch ID | rollout list
  rollout approve|pause|resume|abort|rollback ID
  rollout retry ID [--watch] [--skip-preflight]   again, for unfinished hosts
  webhook add URL [--event TYPE]... | webhook list | webhook rm|test ID

global: --controller URL (SHOAL_CONTROLLER), --token T (SHOAL_TOKEN),
        --token-file F (SHOAL_TOKEN_FILE), --config F (SHOAL_CONFIG), --json
`;

type Command = (args: string[], io: CliIo) => Promise<void>;

const TABLE: Record<string, Command | Record<string, Command>> = {
  keygen: commands.keygen,
  token: { create: commands.tokenCreate, list: commands.tokenList, revoke: commands.tokenRevoke },
  'enroll-token': { create: commands.enrollTokenCreate, list: lifecycle.enrollTokenList, revoke: lifecycle.enrollTokenRevoke },
  host: {
    register: commands.hostRegister,
    diff: commands.hostDiff,
    rm: lifecycle.hostRemove,
    rekey: lifecycle.hostRekey,
    show: reboot.hostShow,
    'set-reboot': reboot.hostSetReboot,
    pause: lifecycle.hostPause(true),
    resume: lifecycle.hostPause(false),
    unknown: lifecycle.hostUnknown,
    adopt: lifecycle.hostAdopt,
  },
  tag: { 'set-reboot': reboot.tagSetReboot, list: reboot.tagList },
  backup: lifecycle.backup,
  set: commands.setDesired,
  status: commands.status,
  history: commands.history,
  release: {
    build: ci.releaseBuild,
    'push-closures': ci.releasePushClosures,
    sign: ci.releaseSign,
    publish: ci.releasePublish,
    create: releases.releaseCreate,
    list: releases.releaseList,
    show: releases.releaseShow,
  },
  rollout: {
    plan: rollouts.rolloutPlan,
    start: rollouts.rolloutStart,
    status: rollouts.rolloutStatus,
    watch: rollouts.rolloutWatch,
    list: rollouts.rolloutList,
    approve: rollouts.rolloutApprove,
    pause: rollouts.rolloutPause,
    resume: rollouts.rolloutResume,
    abort: rollouts.rolloutAbort,
    rollback: rollouts.rolloutRollback,
    retry: rollouts.rolloutRetry,
  },
  webhook: { add: webhooks.webhookAdd, list: webhooks.webhookList, rm: webhooks.webhookRemove, test: webhooks.webhookTest },
  key: { show: commands.keyShow },
};

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
    const entry = TABLE[name];
    if (!entry) throw new CliError(`unknown command ${JSON.stringify(name)}${didYouMean(name, Object.keys(TABLE))}; see shoal --help`, 2);
    let command: Command;
    let args = rest;
    let key = name;
    if (typeof entry === 'function') command = entry;
    else {
      const [sub, ...subArgs] = rest;
      const found = sub === undefined ? undefined : entry[sub];
      if (!found) {
        if (sub === '--help' || sub === '-h') {
          io.stdout(`${Object.keys(entry).map((s) => HELP[`${name} ${s}`]!.split('\n')[0]).join('\n')}\n`);
          return 0;
        }
        const subcommands = Object.keys(entry);
        if (sub === undefined || sub.startsWith('-')) throw new CliError(`${name} needs a subcommand: ${subcommands.join(', ')}`, 2);
        throw new CliError(`unknown subcommand "${name} ${sub}"${didYouMean(sub, subcommands)}; one of: ${subcommands.join(', ')}`, 2);
      }
      command = found;
      args = subArgs;
      key = `${name} ${sub}`;
    }
    if (args.includes('--help') || args.includes('-h')) {
      io.stdout(`${HELP[key] ?? USAGE}\n`);
      return 0;
    }
    await command(args, io);
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
