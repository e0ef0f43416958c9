import type { Logger } from '../../shared/src/logger.js';
import type { Activator } from './activation.js';
import type { AgentConfig } from './config.js';
import type { Reporter } from './reporter.js';
import type { ActivationRecord, LastResult, StateStore } from './state.js';
import { killOrphanedSwitch, resolveSystem, unitName, waitForUnit } from './system.js';
import { REBOOTSTRAP_COMMAND } from './verify.js';

/**
 * At start: finish or undo an activation the agent was killed in the middle of, and otherwise
 * only say where the host stands. A finished activation is never run again.
 */

export interface ReconcileDeps {
  activator: Activator;
  state: StateStore;
  report: Reporter;
  paths: AgentConfig['paths'];
  useSystemdRun: boolean;
  switchTimeoutMs: number;
  logger: Logger;
}

export const RESTARTED = 'agent restarted mid-activation';

export type ReconcileResult = { kind: 'idle' } | { kind: 'resolved'; result: LastResult };

export async function reconcile(deps: ReconcileDeps): Promise<ReconcileResult> {
  const state = deps.state.get();
  const record = state.activation;
  const current = await resolveSystem(deps.paths.currentSystem);
  if (!record) {
    await deps.report({
      phase: 'reconciled',
      manifestVersion: state.highestVersion > 0 ? state.highestVersion : null,
      storePath: state.highestStorePath,
      detail: {
        reason: state.stateLost
          ? `state lost: refusing every manifest until \`${REBOOTSTRAP_COMMAND}\`; running ${current ?? 'an unknown system'}`
          : standing(state.highestVersion, state.highestStorePath, state.lastResult, current),
      },
    });
    return { kind: 'idle' };
  }
  const log = deps.logger.child({ version: record.manifestVersion, target: record.target, step: record.step });
  log.warn({ current }, 'found an activation in flight from before the restart');
  if (deps.useSystemdRun) await waitForSwitchUnits(record, deps.switchTimeoutMs);
  else if (record.switchProcess && (await killOrphanedSwitch(record.switchProcess))) {
    log.warn({ pid: record.switchProcess.pid }, 'killed a switch-to-configuration left running by the previous agent');
  }
  return { kind: 'resolved', result: await resolve(deps, record, current) };
}

async function resolve(deps: ReconcileDeps, record: ActivationRecord, current: string | null): Promise<LastResult> {
  // The agent asked for a reboot (into the new system, or back): judge the system it came up in.
  if (record.step === 'rebooting' || record.step === 'rebooting-back') return deps.activator.afterReboot(record);
  // Nothing on the running system changed yet (or nothing ever would): start over.
  if (['accepted', 'realising', 'staged', 'awaiting-reboot-grant'].includes(record.step) || record.action === 'dry-activate') {
    return deps.activator.run({ ...record, step: 'accepted' });
  }
  // It passed the health gate and was being made the boot default: finish that.
  if (record.step === 'committing' && current === record.target && record.action !== 'boot') {
    const trouble = await deps.activator.commitBoot(record);
    if (trouble) return deps.activator.rollback(record, { ...trouble, reason: `${RESTARTED}; completing the commit: ${trouble.reason}` });
    return deps.activator.finish(record, 'healthy', { reason: `${RESTARTED}; it had passed the health gate, commit completed` }, { previousSystem: record.previousSystem });
  }
  // Anything else may be half-applied: go back to the system that was known to work.
  return deps.activator.rollback(record, { reason: RESTARTED }, { reactivate: record.action !== 'boot' });
}

async function waitForSwitchUnits(record: ActivationRecord, timeoutMs: number): Promise<void> {
  // A switch started under systemd-run outlives the agent; let it end before judging the result.
  for (const kind of ['switch', 'rollback'] as const) {
    for (const action of ['test', 'switch', 'boot', 'dry-activate']) {
      await waitForUnit(`${unitName(kind, record.manifestVersion)}-${action}`, timeoutMs);
    }
  }
}

function standing(version: number, storePath: string | null, last: LastResult | null, current: string | null): string {
  if (version === 0 || !storePath) return current ? `no manifest accepted yet; running ${current}` : 'no manifest accepted yet';
  const lastWord = last ? `; last result for v${last.manifestVersion}: ${last.phase}` : '';
  if (current === storePath) return `running the system of the last accepted manifest v${version}${lastWord}`;
  return `running ${current ?? 'an unknown system'}, last accepted manifest v${version} names ${storePath}${lastWord}`;
}
