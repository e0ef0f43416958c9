import { API_OPTIONS, type CommandSpec } from '../command-spec.js';
import * as commands from '../commands.js';
import * as lifecycle from '../lifecycle-commands.js';

/** Hosts: the fleet's status and history, one host's system, and a host's life from register to rm. */

export const HOST_COMMANDS: CommandSpec[] = [
  {
    name: 'host register',
    summary: 'register a host whose public key you know',
    positionals: ['NAME'],
    options: {
      'public-key': { type: 'string', value: 'BASE64', required: true, description: 'the host’s Ed25519 public key' },
      tag: { type: 'string', value: 'T', multiple: true, description: 'a tag for the host' },
      ...API_OPTIONS,
    },
    description: 'Registers a host whose Ed25519 public key you already know.',
    examples: ['shoal host register web-2 --public-key 3q2+7w...= --tag web'],
    run: commands.hostRegister,
  },
  {
    name: 'host diff',
    summary: 'what it runs against what it should run',
    positionals: ['HOST'],
    options: {
      target: { type: 'string', value: 'STOREPATH', description: 'compare with this system instead of the desired one' },
      ...API_OPTIONS,
    },
    description: `What HOST runs against its desired system (or --target), read by the controller from
its binary caches: packages added, removed and changed (old → new), what the host would download,
closure sizes. A drifted host (one switched by hand) says so.`,
    examples: ['shoal host diff web-1'],
    run: commands.hostDiff,
  },
  {
    name: 'host rm',
    summary: 'remove a host with its history',
    positionals: ['NAME'],
    options: { ...API_OPTIONS },
    description: `Removes a host with its manifests, reports and history; its agent can no longer log in
(its open connection is closed). Refused while an active rollout includes the host: abort it or let
it finish first.`,
    examples: ['shoal host rm web-7'],
    run: lifecycle.hostRemove,
  },
  {
    name: 'host pause',
    summary: 'hold a host back from rollouts and set',
    positionals: ['NAME'],
    options: { ...API_OPTIONS },
    description: `Pauses a host: no rollout issues it a new manifest (it waits in its wave, shown as
paused, neither failed nor skipped; a rollout with a progress deadline halts if nothing else
moves), and \`shoal set\` on it is refused unless --force. What it runs and holds now is unchanged.
Undo with \`shoal host resume NAME\`.`,
    examples: ['shoal host pause db-1'],
    run: lifecycle.hostPause(true),
  },
  {
    name: 'host resume',
    summary: 'let a paused host take part again',
    positionals: ['NAME'],
    options: { ...API_OPTIONS },
    description: 'Resumes a paused host: a rollout waiting for it issues it its manifest now.',
    examples: ['shoal host resume db-1'],
    run: lifecycle.hostPause(false),
  },
  {
    name: 'host rekey',
    summary: 'give a reinstalled host its new key',
    positionals: ['NAME'],
    options: {
      'public-key': { type: 'string', value: 'BASE64', required: true, description: 'the reinstalled host’s new Ed25519 public key' },
      ...API_OPTIONS,
    },
    description: `Gives a known host a new key (a reinstalled machine). Its history and desired state
stay; the old key stops working at once. The agent logs its public key and fingerprint at start
("host identity loaded").`,
    examples: ['shoal host rekey web-2 --public-key 3q2+7w...='],
    run: lifecycle.hostRekey,
  },
  {
    name: 'host unknown',
    summary: 'unknown hosts that tried to connect',
    positionals: [],
    options: { ...API_OPTIONS },
    description: `Lists hosts this controller does not know that tried to connect, with the fingerprint
of the key they proved they hold and the version they accepted: typically the fleet after the
controller's database was lost.`,
    examples: ['shoal host unknown'],
    run: lifecycle.hostUnknown,
  },
  {
    name: 'host adopt',
    summary: 'make an unknown host a known one',
    positionals: ['NAME'],
    options: {
      fingerprint: { type: 'string', value: 'SHA256:…', description: 'which key is the host, when several tried the name' },
      tag: { type: 'string', value: 'T', multiple: true, description: 'a tag for the host' },
      ...API_OPTIONS,
    },
    description: `Makes an unknown host that tried to connect a known host, with the key it presented; it
is served at its next login, above the version it accepted. Compare the fingerprint with the one
the agent logs at start.`,
    examples: ['shoal host adopt web-3 --fingerprint SHA256:q3bS…'],
    run: lifecycle.hostAdopt,
  },
  {
    name: 'backup',
    summary: 'online copy of the controller database',
    positionals: [],
    options: {
      out: { type: 'string', value: 'FILE', required: true, description: 'where the copy of the database is written, mode 0600' },
      ...API_OPTIONS,
    },
    description: `Downloads a consistent copy of the controller's database, taken online (the
controller keeps serving), checks it with SQLite's integrity check and writes it to FILE (mode
0600: it holds webhook secrets). Needs an admin token. To restore: see "Backup and restore" in
controller/README.md. SQLite only: back up a controller on PostgreSQL with pg_dump.`,
    examples: ['shoal backup --out /var/backups/shoal-$(date +%F).sqlite'],
    run: lifecycle.backup,
  },
  {
    name: 'set',
    summary: "set one host's system now",
    positionals: ['HOST', 'STOREPATH'],
    options: {
      action: { type: 'string', value: 'safe-switch|switch|boot|dry-activate', default: 'safe-switch', description: 'how the host activates it' },
      force: { type: 'boolean', description: 'also on a paused host' },
      ...API_OPTIONS,
    },
    description: `Sets one host's desired system at once, outside any rollout. A paused host (shoal host
pause) is refused unless --force.`,
    examples: ['shoal set web-1 /nix/store/...-nixos-system-web-1 --action switch'],
    run: commands.setDesired,
  },
  {
    name: 'status',
    summary: 'fleet status',
    positionals: [],
    options: {
      failed: { type: 'boolean', description: 'only failed hosts' },
      tag: { type: 'string', value: 'TAG', multiple: true, description: 'only hosts with one of these tags' },
      rollout: { type: 'string', value: 'ID', description: 'only hosts whose newest generation came from this rollout' },
      wide: { type: 'boolean', description: 'also the current and desired systems and the agent version' },
      ...API_OPTIONS,
    },
    description: `Fleet status: a summary line (hosts healthy, failed, deploying, offline), then one row
per host: its phase, generation (#7; * while it is not yet running it), the release and the
rollout it is on. Under each failed host: what the failure most likely means and the last lines of
the failing command's output. Times are local with their zone.`,
    examples: ['shoal status --failed --tag web'],
    run: commands.status,
  },
  {
    name: 'history',
    summary: "a host's event history",
    positionals: ['HOST'],
    options: {
      limit: { type: 'string', value: 'N', default: '50', description: 'the newest N events' },
      ...API_OPTIONS,
    },
    description: `A host's event history as sentences, oldest first: generations issued, what the agent
reported, connections, rollout steps; a failure is followed by what it most likely means and the
command's last lines.`,
    examples: ['shoal history web-1 --limit 20'],
    run: commands.history,
  },
];
