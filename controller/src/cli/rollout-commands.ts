import { RolloutList, RolloutPlanReport, RolloutRoutes, RolloutSpec, RolloutStatus, type RolloutAction } from '../../../shared/src/rollout-api.js';
import { json } from './args.js';
import type { Parsed, Values } from './command-spec.js';
import { OperatorClient } from './client.js';
import { paint } from './colour.js';
import { CliError, type CliIo } from './context.js';
import { driftLines, fleetDiffLines, preflightLines } from './diff-format.js';
import { planLines, rolloutListTable, stateColour, statusLines } from './rollout-format.js';
import { specFromFlags } from './rollout-spec.js';
import { watchRollout } from './watch.js';

/** Ends a watched rollout's command: exit 0 only when it succeeded. */
function verdict(status: RolloutStatus): void {
  if (status.state === 'succeeded') return;
  throw new CliError(`rollout ${status.id} ${status.state}${status.reason ? `: ${status.reason}` : ''}`);
}

async function follow(client: OperatorClient, id: string, io: CliIo, values: Values): Promise<void> {
  verdict(await watchRollout(client, id, io, { json: values.json === true }));
}

export async function rolloutPlan({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const spec = specFromFlags(positionals[0]!, values);
  const plan = await OperatorClient.from(values, io).call('POST', RolloutRoutes.plan, RolloutPlanReport, spec);
  if (values.json) return json(io, plan);
  // The controller accepted the spec, so its defaults are the ones this schema fills in.
  const full = RolloutSpec.safeParse(spec);
  const colours = paint(io);
  const extra = [...(plan.diff ? ['', ...fleetDiffLines(plan.diff, colours)] : []), ...driftLines(plan.drifted, colours), ...preflightLines(plan.preflight, colours)];
  io.stdout(`${planLines(plan, full.success ? full.data : null, colours)}${extra.length ? `${extra.join('\n')}\n` : ''}`);
}

export async function rolloutStart({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const spec = specFromFlags(positionals[0]!, values);
  const client = OperatorClient.from(values, io);
  const body = values['skip-preflight'] ? { ...spec, skipPreflight: true } : spec;
  const status = await client.call('POST', RolloutRoutes.rollouts, RolloutStatus, body);
  if (values.watch) {
    if (!values.json) io.stdout(`started rollout ${status.id}\n`);
    return follow(client, status.id, io, values);
  }
  if (values.json) return json(io, status);
  io.stdout(`started rollout ${status.id}\n${statusLines(status, paint(io))}`);
}

export async function rolloutStatus({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const status = await OperatorClient.from(values, io).call('GET', RolloutRoutes.rollout(positionals[0]!), RolloutStatus);
  if (values.json) json(io, status);
  else io.stdout(statusLines(status, paint(io)));
}

export async function rolloutWatch({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  return follow(OperatorClient.from(values, io), positionals[0]!, io, values);
}

export async function rolloutList({ values }: Parsed, io: CliIo): Promise<void> {
  const list = await OperatorClient.from(values, io).call('GET', RolloutRoutes.rollouts, RolloutList);
  if (values.json) json(io, list);
  else io.stdout(rolloutListTable(list.rollouts, paint(io)));
}

const PAST: Record<RolloutAction, string> = { approve: 'approved', pause: 'paused', resume: 'resumed', abort: 'aborted', rollback: 'rolling back' };

function act(action: RolloutAction) {
  return async ({ values, positionals }: Parsed, io: CliIo): Promise<void> => {
    const id = positionals[0]!;
    const status = await OperatorClient.from(values, io).call('POST', RolloutRoutes.action(id, action), RolloutStatus);
    if (values.json) json(io, status);
    else io.stdout(`${PAST[action]} rollout ${status.id}; now ${stateColour(status.state, paint(io))} at wave ${status.wave} of ${status.waves.length}\n`);
  };
}

export const rolloutApprove = act('approve');
export const rolloutPause = act('pause');
export const rolloutResume = act('resume');
export const rolloutAbort = act('abort');
export const rolloutRollback = act('rollback');

/** A new rollout for the hosts a finished one failed or never reached; prints (or watches) it. */
export async function rolloutRetry({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const client = OperatorClient.from(values, io);
  const status = await client.call('POST', RolloutRoutes.retry(positionals[0]!), RolloutStatus, values['skip-preflight'] ? { skipPreflight: true } : undefined);
  if (values.watch) {
    if (!values.json) io.stdout(`started rollout ${status.id}, retrying ${positionals[0]!}\n`);
    return follow(client, status.id, io, values);
  }
  if (values.json) return json(io, status);
  io.stdout(`started rollout ${status.id}, retrying ${positionals[0]!}\n${statusLines(status, paint(io))}`);
}
