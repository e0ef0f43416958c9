import { API_OPTIONS, type CommandSpec, type OptionTable } from '../command-spec.js';
import * as rollouts from '../rollout-commands.js';
import { SPEC_OPTIONS } from '../rollout-spec.js';

/** Rollouts: plan, start, follow and steer a release's way through the fleet. */

const START_OPTIONS = {
  watch: { type: 'boolean', short: 'w', description: 'follow it like `shoal rollout watch`, and exit the same way' },
  'skip-preflight': { type: 'boolean', description: 'start even when the binary cache cannot serve every target closure' },
} as const satisfies OptionTable;

/** approve, pause, resume, abort, rollback: one rollout ID and nothing else. */
function action(name: string, summary: string, description: string, run: CommandSpec['run']): CommandSpec {
  return { name: `rollout ${name}`, summary, positionals: ['ID'], options: { ...API_OPTIONS }, description, examples: [`shoal rollout ${name} ro-1a2b3c4d`], run };
}

export const ROLLOUT_COMMANDS: CommandSpec[] = [
  {
    name: 'rollout plan',
    summary: 'dry run: waves, fleet diff, preflight',
    positionals: ['RELEASE'],
    options: { ...SPEC_OPTIONS, ...API_OPTIONS },
    description: `Dry run: prints the waves the rollout would use, their hosts in order, the canary and
the approval gates. The same flags to \`start\` give the same plan. With binary caches configured on
the controller it also prints what the release changes (packages old → new across the fleet, the
download, hosts grouped by change set), hosts that drifted, and the cache preflight: whether every
path of every target closure is in the cache, signed by a trusted key. --json gives all of it,
with every host's diff.`,
    examples: ['shoal rollout plan v42 --canary 1 --waves 25%,100% --approve-before 2'],
    run: rollouts.rolloutPlan,
  },
  {
    name: 'rollout start',
    summary: 'start a rollout of a release',
    positionals: ['RELEASE'],
    options: { ...START_OPTIONS, ...SPEC_OPTIONS, ...API_OPTIONS },
    description: `Starts a rollout of RELEASE and prints its status (its id comes first). The controller
first checks that its binary caches hold every path of every target closure, signed by a trusted
key, and refuses the rollout naming each missing or unsigned path and its hosts (the audit log
records a --skip-preflight).`,
    examples: ['shoal rollout start v42 --canary 1 --waves 25%,100% --bake 5m \\\n  --max-failures 10% --min-sample 4 --on-failure rollback --watch'],
    run: rollouts.rolloutStart,
  },
  {
    name: 'rollout status',
    summary: "a rollout's waves and failures",
    positionals: ['ID'],
    options: { ...API_OPTIONS },
    description: `One rollout: its state, each wave's hosts pending / in progress / healthy / failed /
skipped, bake time left, failures against the threshold, and every failed host with its reason.`,
    examples: ['shoal rollout status ro-1a2b3c4d'],
    run: rollouts.rolloutStatus,
  },
  {
    name: 'rollout watch',
    summary: 'follow a rollout live until it ends',
    positionals: ['ID'],
    options: { ...API_OPTIONS },
    description: `Follows a rollout live until it ends. On a terminal the view redraws; otherwise one line
per change (--json: one JSON object per line). Exits 0 when the rollout succeeded, 1 when it
halted, rolled back (or failed to), or was aborted.`,
    examples: ['shoal rollout watch ro-1a2b3c4d || notify-send "rollout failed"'],
    run: rollouts.rolloutWatch,
  },
  {
    name: 'rollout list',
    summary: 'the latest rollouts',
    positionals: [],
    options: { ...API_OPTIONS },
    description: 'The latest 50 rollouts, newest first.',
    examples: ['shoal rollout list'],
    run: rollouts.rolloutList,
  },
  action('approve', 'let a waiting rollout start its next wave', 'Lets a rollout that waits for approval start its next wave.', rollouts.rolloutApprove),
  action(
    'pause',
    'stop issuing manifests and every clock',
    `Stops issuing new manifests and stops every clock of the rollout (bake, wave, and each host's
health and offline deadlines); hosts already updating finish. \`resume\` continues.`,
    rollouts.rolloutPause,
  ),
  action('resume', 'continue a paused rollout', 'Continues a paused rollout where it stood.', rollouts.rolloutResume),
  action(
    'abort',
    'end a rollout now',
    `Ends a rollout now; hosts keep whatever system they have. A rollout that is rolling back can be
aborted too: hosts already sent back still go back.`,
    rollouts.rolloutAbort,
  ),
  action(
    'rollback',
    'move changed hosts back to their old system',
    `Moves every host the rollout changed back to the system it ran before (as new signed
manifests). Ends as rolled-back when every host proved healthy on its previous system, as
rollback-failed when one did not.`,
    rollouts.rolloutRollback,
  ),
  {
    name: 'rollout retry',
    summary: 'again, for the hosts it left unfinished',
    positionals: ['ID'],
    options: { ...START_OPTIONS, ...API_OPTIONS },
    description: `Starts a new rollout of the same release and settings for only the hosts the finished
rollout ID failed, skipped, never reached or rolled back; hosts already healthy on it are left
alone. The new rollout names ID as the one it retries. Like a start, it is refused when the binary
cache cannot serve the target closures.`,
    examples: ['shoal rollout retry ro-1a2b3c4d --watch'],
    run: rollouts.rolloutRetry,
  },
];
