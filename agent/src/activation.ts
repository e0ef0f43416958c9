import type { Logger } from '../../shared/src/logger.js';
import type { Action, CommandFailure, ManifestPayload, Phase, RefusalReason, ReportDetail } from '../../shared/src/protocol.js';
import type { AgentConfig } from './config.js';
import type { RunResult } from './exec.js';
import { runHealthGate } from './health.js';
import { assessOnHost, blessBoot, requestReboot } from './reboot.js';
import { describeCallError, type Call } from './client.js';
import type { RebootGrantAnswer } from '../../shared/src/protocol.js';
import { allGroupsOpen, nextOpeningOfAll } from '../../shared/src/windows.js';
import { effectiveRebootSettings, type EffectiveRebootSettings } from './reboot-settings.js';
import type { RebootAssessment } from '../../shared/src/reboot.js';
import type { Nix } from './nix.js';
import type { Reporter } from './reporter.js';
import type { ActivationRecord, ActivationStep, LastResult, StateStore } from './state.js';
import { failedUnits, hasSwitchScript, processIdentity, resolveSystem, runSwitch, switchActionFor, unitName, type SwitchAction } from './system.js';

/**
 * Activation on a host, as DESIGN.md lays it out: realise → switch (`test` for safe-switch) →
 * health gate → commit (profile + `boot`) → healthy; on any failure re-activate the recorded
 * previous system and make it the boot default again. The activation record is persisted
 * before every step, so that an agent killed half-way reconciles instead of guessing.
 */

export interface ActivationDeps {
  nix: Pick<Nix, 'realise' | 'setProfile'>;
  state: StateStore;
  report: Reporter;
  paths: AgentConfig['paths'];
  timeouts: AgentConfig['timeouts'];
  healthChecks: AgentConfig['healthChecks'];
  healthDeadlineMs: number;
  reboot: AgentConfig['reboot'];
  /** The agent's own windows; unset: the controller's (reboot-settings.ts). */
  maintenanceWindows: AgentConfig['maintenanceWindows'];
  windowsApplyTo: AgentConfig['windowsApplyTo'];
  /** Asks the controller for the fleet reboot lock; a failed call means it cannot be reached. */
  askRebootGrant: (manifestVersion: number) => Promise<Call<RebootGrantAnswer>>;
  /** How long to wait before asking again while the controller cannot be reached. */
  grantRetryMs: number;
  useSystemdRun: boolean;
  checkSystemdUnits: boolean;
  /** Resolves true once the controller acknowledged the report with this seq ('checking'). */
  confirmReachable: (seq: number, timeoutMs: number) => Promise<boolean>;
  clock: () => Date;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

export interface Trouble {
  reason: string;
  failure?: CommandFailure;
}

function commandTrouble(what: string, failure: CommandFailure): Trouble {
  const { exitCode, signal, timedOut } = failure;
  const how = timedOut ? 'timed out' : signal ? `killed by ${signal}` : exitCode === null ? 'could not run' : `exit status ${exitCode}`;
  return { reason: `${what} failed (${how})`, failure };
}

export class Activator {
  /** Set while recovering from an unexpected error: a failed state write or report is logged, not thrown. */
  private bestEffort = false;

  constructor(private readonly deps: ActivationDeps) {}

  /** The action this host applies: a local override in the config wins over the manifest's. */
  static effectiveAction(manifest: ManifestPayload, override: Action | null): Action {
    return override ?? manifest.action;
  }

  /**
   * Applies a verified manifest. Its version (and its release statement's floor) is recorded as
   * accepted first, so that a replay of it, or of anything below the floor, is refused even if
   * the agent dies during the activation.
   */
  async apply(manifest: ManifestPayload, action: Action, floor: number): Promise<LastResult> {
    const started = Date.now();
    const current = await resolveSystem(this.deps.paths.currentSystem);
    const renewal = await this.renewal(manifest, action, current);
    if (renewal) {
      await this.deps.state.update((s) => {
        s.highestVersion = manifest.version;
        s.highestStorePath = manifest.storePath;
        s.highestFloor = Math.max(s.highestFloor, floor);
        s.lastResult = renewal;
      });
      await this.deps.report({ phase: renewal.phase, manifestVersion: manifest.version, storePath: manifest.storePath, detail: { reason: renewal.reason } });
      return renewal;
    }
    const record: ActivationRecord = {
      manifestVersion: manifest.version,
      target: manifest.storePath,
      action,
      previousSystem: null,
      step: 'accepted',
      startedAt: this.deps.clock().toISOString(),
      rebootSettings: manifest.reboot ?? null,
    };
    await this.deps.state.update((s) => {
      s.highestVersion = manifest.version;
      s.highestStorePath = manifest.storePath;
      s.highestFloor = Math.max(s.highestFloor, floor);
      s.activation = record;
    });
    try {
      await this.deps.report({ phase: 'accepted', manifestVersion: record.manifestVersion, storePath: record.target, detail: { reason: `action ${action}` } });
    } catch (error) {
      return this.recover(record, error);
    }
    if (current === manifest.storePath && (action === 'safe-switch' || action === 'switch')) return this.confirmRunning(record, started);
    return this.run(record, started);
  }

  /**
   * A new manifest for the system the host already runs (a rollout whose release names it, a
   * rollback to it): nothing to switch, but a rollout waits for the answer, so the health gate
   * gives it, as after a switch. The record stays at 'accepted' meanwhile: an agent killed during
   * the checks runs the activation in full at its next start, which is safe for a running system.
   */
  private async confirmRunning(record: ActivationRecord, started: number): Promise<LastResult> {
    const checking = await this.deps.report({
      phase: 'checking',
      manifestVersion: record.manifestVersion,
      storePath: record.target,
      detail: { reason: 'already running this system; checking its health' },
    });
    const gate = await runHealthGate({
      checks: this.deps.healthChecks,
      deadlineMs: this.deps.healthDeadlineMs,
      controllerReachable: (timeoutMs) => this.deps.confirmReachable(checking.seq, timeoutMs),
    });
    if (!gate.ok) {
      return this.finish(record, 'failed', { reason: `already running this system, but its health gate failed: ${gate.reason}`, failure: gate.failure }, {});
    }
    // A reboot must come back to it too (a `test` switch may have left another boot default).
    if ((await resolveSystem(this.deps.paths.profile)) !== record.target) {
      const trouble = await this.commitBoot(record);
      if (trouble) return this.finish(record, 'failed', { reason: `already running this system, but ${trouble.reason}`, failure: trouble.failure }, {});
    }
    return this.finish(record, 'healthy', { reason: 'already running this system; health checks pass' }, { durationMs: Date.now() - started });
  }

  /** A renewal (same system, new version) must not re-activate anything. */
  private async renewal(manifest: ManifestPayload, action: Action, current: string | null): Promise<LastResult | null> {
    const last = this.deps.state.get().lastResult;
    if (!last || last.storePath !== manifest.storePath) return null;
    const at = this.deps.clock().toISOString();
    const base = { manifestVersion: manifest.version, storePath: manifest.storePath, at };
    if (last.phase === 'healthy' && current === manifest.storePath && (action === 'safe-switch' || action === 'switch')) {
      return { ...base, phase: 'healthy', reason: 'already running this system; renewed without re-activating' };
    }
    if (last.phase === 'pending-reboot' && action === 'boot') {
      const booted = await resolveSystem(this.deps.paths.bootedSystem);
      return booted === manifest.storePath
        ? { ...base, phase: 'healthy', reason: 'booted into this system' }
        : { ...base, phase: 'pending-reboot', reason: 'boot default already set; waiting for a reboot' };
    }
    if (last.phase === 'pending-reboot' && current === manifest.storePath) {
      // Switched live earlier, the kernel waits for a reboot: nothing to re-activate.
      const booted = await resolveSystem(this.deps.paths.bootedSystem);
      return booted === manifest.storePath
        ? { ...base, phase: 'healthy', reason: 'booted into this system' }
        : { ...base, phase: 'pending-reboot', reason: 'running this system live; waiting for a reboot' };
    }
    if (last.phase === 'healthy' && action === 'boot' && current === manifest.storePath) {
      return { ...base, phase: 'healthy', reason: 'already running this system; renewed without re-activating' };
    }
    return null;
  }

  /**
   * Runs (or re-runs, after a restart before anything changed) an accepted activation. An
   * unexpected error on the way (a state write on a full disk, a bug) never leaves the host on
   * a system nobody checked: see recover().
   */
  async run(record: ActivationRecord, started = Date.now()): Promise<LastResult> {
    try {
      return await this.runSteps(record, started);
    } catch (error) {
      return this.recover(record, error);
    }
  }

  /**
   * After an unexpected error: before the switch nothing on the host changed, so the activation
   * just failed; from the switch on, the host goes back to the previous system. Recording and
   * reporting are best effort here (they may be what failed); the commands still run, and a
   * record left on disk is reconciled at the next start.
   */
  private async recover(record: ActivationRecord, error: unknown): Promise<LastResult> {
    const message = error instanceof Error ? error.message : String(error);
    const reason = `unexpected error while ${record.step}: ${message}`.slice(0, 4096);
    this.deps.logger.error({ err: error, version: record.manifestVersion, target: record.target, step: record.step }, 'activation hit an unexpected error; going back to a checked system');
    this.bestEffort = true;
    try {
      const touchedHost = record.previousSystem !== null && record.action !== 'dry-activate' && !['accepted', 'realising', 'staged', 'awaiting-reboot-grant'].includes(record.step);
      if (!touchedHost) return await this.finish(record, 'failed', { reason }, {});
      return await this.rollback(record, { reason }, { reactivate: record.action !== 'boot' });
    } finally {
      this.bestEffort = false;
    }
  }

  private async runSteps(record: ActivationRecord, started: number): Promise<LastResult> {
    const log = this.deps.logger.child({ version: record.manifestVersion, target: record.target, action: record.action });

    await this.step(record, 'realising');
    const realised = await this.deps.nix.realise(record.target);
    if (!realised.ok) {
      if (realised.untrusted) {
        return this.refuse(record, 'untrusted-closure', 'no trusted cache key signed the closure; Nix refused to substitute it', realised.failure);
      }
      return this.finish(record, 'failed', { ...commandTrouble('realising the closure', realised.failure) }, {});
    }
    const sizes: ReportDetail = {};
    if (realised.closureBytes !== undefined) sizes.closureBytes = realised.closureBytes;
    if (realised.downloadedBytes !== undefined) sizes.downloadedBytes = realised.downloadedBytes;
    log.info({ ...sizes, ms: realised.durationMs }, 'closure realised');

    if (!(await hasSwitchScript(record.target))) {
      return this.refuse(record, 'not-a-nixos-system', `${record.target} has no bin/switch-to-configuration; it is not a NixOS system`);
    }

    if (record.action === 'dry-activate') {
      await this.step(record, 'activating');
      const dry = await this.switch(record, record.target, 'dry-activate', 'switch');
      if (!dry.ok) return this.finish(record, 'failed', commandTrouble('switch-to-configuration dry-activate', dry.failure), sizes);
      return this.finish(record, 'dry-activated', { reason: dry.outputTail.slice(-2000) || 'dry activation printed nothing' }, { ...sizes, durationMs: Date.now() - started });
    }

    record.previousSystem = await resolveSystem(this.deps.paths.currentSystem);
    // Known before anything changes, and reported with 'activating': does this system need a reboot, can it switch live at all?
    const booted = await resolveSystem(this.deps.paths.bootedSystem);
    const assessment = await assessOnHost(booted, record.previousSystem, record.target);
    if (assessment.needed) log.info({ reboot: assessment }, 'the new system needs a reboot');
    const settings = effectiveRebootSettings(
      { policy: this.deps.reboot.policy, maintenanceWindows: this.deps.maintenanceWindows, windowsApplyTo: this.deps.windowsApplyTo },
      record.rebootSettings,
    );
    log.info({ rebootSettings: settings }, 'reboot settings of this activation');
    const rebootNow = record.action !== 'boot' && rebootsFor(settings.policy, assessment);
    if (rebootNow || settings.windowsForAll) await this.waitForWindow(record, assessment, settings);
    if (rebootNow) {
      const refused = await this.waitForGrant(record);
      if (refused) return this.finish(record, 'failed', refused, { reboot: assessment });
    }
    await this.step(record, 'activating', { previousSystem: record.previousSystem, reboot: assessment });

    if (rebootNow) return this.bootAndReboot(record, assessment, sizes, started);
    if (record.action !== 'boot' && !assessment.liveSwitchPossible) {
      // switch-to-configuration refuses a live switch when inhibitors differ: never try `test`.
      const trouble = await this.commitBoot(record);
      if (trouble) return this.rollback(record, trouble, { reactivate: false });
      return this.finish(record, 'pending-reboot', { reason: `${describeReboot(assessment)}; set as boot default, waiting for a reboot (${policyText(settings)})` }, { ...sizes, reboot: assessment, durationMs: Date.now() - started });
    }

    if (record.action === 'boot') {
      const trouble = await this.commitBoot(record);
      if (trouble) return this.rollback(record, trouble, { reactivate: false });
      const booted = await resolveSystem(this.deps.paths.bootedSystem);
      if (booted === record.target) {
        return this.finish(record, 'healthy', { reason: 'booted system already is the target' }, { ...sizes, durationMs: Date.now() - started });
      }
      return this.finish(record, 'pending-reboot', { reason: 'set as boot default; activates at the next reboot' }, { ...sizes, durationMs: Date.now() - started });
    }

    const unitsBefore = this.deps.checkSystemdUnits ? await this.failedUnitNames() : null;
    const switchAction: SwitchAction = switchActionFor(record.action);
    const switched = await this.switch(record, record.target, switchAction, 'switch');
    if (!switched.ok) return this.rollback(record, commandTrouble(`switch-to-configuration ${switchAction}`, switched.failure));

    const checking = await this.step(record, 'checking');
    const gate = await runHealthGate({
      checks: this.deps.healthChecks,
      deadlineMs: this.deps.healthDeadlineMs,
      failedUnits: this.deps.checkSystemdUnits ? () => this.failedUnitNames() : undefined,
      unitsFailedBefore: unitsBefore ?? [],
      controllerReachable: (timeoutMs) => this.deps.confirmReachable(checking, timeoutMs),
    });
    if (!gate.ok) return this.rollback(record, { reason: `health gate: ${gate.reason}`, failure: gate.failure });
    log.info('health gate passed');

    await this.step(record, 'committing');
    const trouble = await this.commitBoot(record);
    if (trouble) return this.rollback(record, trouble);
    if (assessment.needed) {
      // Running live, but the kernel (or initrd) is still the booted one's: complete only after a reboot.
      return this.finish(record, 'pending-reboot', { reason: `running it live; ${describeReboot(assessment)}: complete after a reboot (${policyText(settings)})` }, { ...sizes, reboot: assessment, previousSystem: record.previousSystem, durationMs: Date.now() - started });
    }
    return this.finish(record, 'healthy', {}, { ...sizes, previousSystem: record.previousSystem, durationMs: Date.now() - started });
  }

  /**
   * Staging: the closure is realised, nothing is activated until a maintenance window opens.
   * Reported once as `staged` with the opening time; re-checked at least every 30 s, so a clock
   * that jumps (NTP after boot) is followed.
   */
  private async waitForWindow(record: ActivationRecord, assessment: RebootAssessment, settings: EffectiveRebootSettings): Promise<void> {
    const windows = settings.windows;
    let reported = false;
    while (!allGroupsOpen(windows, this.deps.clock())) {
      const now = this.deps.clock();
      const opens = nextOpeningOfAll(windows, now);
      if (!reported) {
        reported = true;
        this.deps.logger.info({ version: record.manifestVersion, windowOpensAt: opens?.toISOString() }, 'staged: waiting for the maintenance window');
        await this.step(record, 'staged', { reason: opens ? 'realised; activates when the maintenance window opens' : 'realised; its maintenance windows do not open together within a week (check the tags\' windows)', reboot: assessment, ...(opens ? { windowOpensAt: opens.toISOString() } : {}) });
      }
      const wait = opens ? Math.max(100, Math.min(30_000, opens.getTime() - now.getTime())) : 30_000;
      await sleep(wait);
    }
  }

  /**
   * The fleet reboot lock: the controller grants the reboot. While it refuses (other hosts are
   * rebooting) or cannot be reached, the host waits (reported as `awaiting-reboot-grant`, once
   * per reason); unreachable, it reboots on its own only when reboot.withoutController says so.
   * Nothing on the host has changed while it waits.
   */
  private async waitForGrant(record: ActivationRecord): Promise<Trouble | null> {
    let said: string | null = null;
    for (;;) {
      const answer = await this.deps.askRebootGrant(record.manifestVersion);
      let reason: string;
      let wait: number;
      if (answer.ok && answer.value.granted) return null;
      if (answer.ok) {
        reason = `waiting for the controller's reboot grant: ${answer.value.reason}`;
        wait = Math.max(500, answer.value.retryAfterMs);
      } else if (answer.error.kind === 'http' && answer.error.status >= 400 && answer.error.status < 500 && answer.error.status !== 401 && answer.error.status !== 429) {
        // The controller answered but will not grant (e.g. one without reboot grants): that does not pass by waiting.
        if (this.deps.reboot.withoutController) return null;
        return { reason: `the controller refused the reboot grant request (${describeCallError(answer.error)}); not rebooting without a grant` };
      } else {
        if (this.deps.reboot.withoutController) {
          this.deps.logger.warn({ version: record.manifestVersion, error: describeCallError(answer.error) }, 'controller unreachable: rebooting without its grant (reboot.withoutController)');
          return null;
        }
        reason = `${describeCallError(answer.error)}; no reboot without its grant`;
        wait = this.deps.grantRetryMs;
      }
      if (reason !== said) {
        said = reason;
        this.deps.logger.warn({ version: record.manifestVersion, reason }, 'not rebooting yet');
        await this.step(record, 'awaiting-reboot-grant', { reason });
      }
      await sleep(wait);
    }
  }


  /**
   * The reboot path: profile + `boot` (never `test`), then the reboot. The record says
   * 'rebooting' before the command runs, so the agent that starts after the reboot runs the
   * health gate on the new system (afterReboot) instead of guessing.
   */
  private async bootAndReboot(record: ActivationRecord, assessment: RebootAssessment, sizes: ReportDetail, started: number): Promise<LastResult> {
    const trouble = await this.commitBoot(record);
    if (trouble) return this.rollback(record, trouble, { reactivate: false });
    const why = assessment.needed ? describeReboot(assessment) : 'reboot policy always';
    const seq = await this.step(record, 'rebooting', { reason: `${why}; rebooting into the new system`, reboot: assessment, ...sizes });
    // Let the controller hear it before the host goes down (the outbox keeps it otherwise).
    await this.deps.confirmReachable(seq, 5_000);
    this.deps.logger.warn({ version: record.manifestVersion, target: record.target, reboot: assessment, command: this.deps.reboot.command }, 'rebooting into the new system');
    const rebooted = await requestReboot(this.deps.reboot, this.deps.env);
    if (!rebooted.ok) return this.rollback(record, commandTrouble('the reboot command', rebooted.failure), { reactivate: false });
    return { manifestVersion: record.manifestVersion, storePath: record.target, phase: 'rebooting', at: this.deps.clock().toISOString(), reason: why };
  }

  /**
   * The agent's first start after a reboot it asked for (step 'rebooting' or 'rebooting-back').
   * Into the new system: health gate, bless the boot, commit → healthy; a failed gate makes the
   * previous system the boot default and reboots into it once. Back in the previous system:
   * rolled-back with the reason. Anything else (the bootloader fell back, the reboot never
   * happened): the previous system is made the boot default again, never another reboot.
   */
  async afterReboot(record: ActivationRecord): Promise<LastResult> {
    const booted = await resolveSystem(this.deps.paths.bootedSystem);
    if (record.step === 'rebooting-back') {
      const reason = record.rollbackReason ?? 'the new system failed after the reboot';
      if (booted === record.previousSystem) return this.finish(record, 'rolled-back', { reason: `${reason}; rebooted back into the previous system` }, { previousSystem: record.previousSystem });
      return this.finish(record, 'failed', { reason: `${reason}; rebooting back came up in ${booted ?? 'an unknown system'}, not ${record.previousSystem}` }, { previousSystem: record.previousSystem });
    }
    if (booted !== record.target) {
      return this.rollback(record, { reason: `rebooted, but came up in ${booted ?? 'an unknown system'} instead of the new system` }, { reactivate: false });
    }
    const checking = await this.step(record, 'checking', { reason: 'booted into the new system; checking its health' });
    const gate = await runHealthGate({
      checks: this.deps.healthChecks,
      deadlineMs: this.deps.healthDeadlineMs,
      failedUnits: this.deps.checkSystemdUnits ? () => this.failedUnitNames() : undefined,
      unitsFailedBefore: [],
      controllerReachable: (timeoutMs) => this.deps.confirmReachable(checking, timeoutMs),
    });
    if (!gate.ok) return this.rebootBack(record, { reason: `post-reboot health gate: ${gate.reason}`, failure: gate.failure });
    await this.step(record, 'committing');
    const blessed = await blessBoot(this.deps.reboot, this.deps.env);
    if (blessed && !blessed.ok) return this.rebootBack(record, commandTrouble('blessing the boot', blessed.failure));
    return this.finish(record, 'healthy', { reason: 'rebooted into the new system; health checks pass' }, { previousSystem: record.previousSystem });
  }

  /** The previous system becomes the boot default again and the host reboots into it: once, recorded first. */
  private async rebootBack(record: ActivationRecord, trouble: Trouble): Promise<LastResult> {
    const prev = record.previousSystem;
    this.deps.logger.warn({ reason: trouble.reason, failure: trouble.failure, previousSystem: prev }, 'the new system failed after the reboot; rebooting back');
    if (!prev) return this.finish(record, 'failed', { ...trouble, reason: `${trouble.reason}; no previous system to go back to` }, { previousSystem: null });
    const profile = await this.deps.nix.setProfile(this.deps.paths.profile, prev);
    const boot = profile.ok ? await this.switch(record, prev, 'boot', 'rollback') : profile;
    if (!boot.ok) {
      const bootTrouble = commandTrouble('restoring the previous boot default', boot.failure);
      return this.finish(record, 'failed', { reason: `${trouble.reason}; then ${bootTrouble.reason}`, failure: bootTrouble.failure }, { previousSystem: prev });
    }
    record.rollbackReason = trouble.reason;
    const seq = await this.step(record, 'rebooting-back', { reason: `${trouble.reason}; rebooting back into ${prev}`, previousSystem: prev, ...(trouble.failure ? { failure: trouble.failure } : {}) });
    await this.deps.confirmReachable(seq, 5_000);
    const rebooted = await requestReboot(this.deps.reboot, this.deps.env);
    if (!rebooted.ok) {
      const rebootTrouble = commandTrouble('the reboot command', rebooted.failure);
      return this.finish(record, 'failed', { reason: `${trouble.reason}; previous system is the boot default again, but ${rebootTrouble.reason}`, failure: rebootTrouble.failure }, { previousSystem: prev });
    }
    return { manifestVersion: record.manifestVersion, storePath: record.target, phase: 'rebooting', at: this.deps.clock().toISOString(), reason: trouble.reason };
  }

  /** Profile --set + `boot`: from now on a reboot comes back to this system. */
  async commitBoot(record: ActivationRecord): Promise<Trouble | null> {
    const profile = await this.deps.nix.setProfile(this.deps.paths.profile, record.target);
    if (!profile.ok) return commandTrouble('setting the system profile', profile.failure);
    const boot = await this.switch(record, record.target, 'boot', 'switch');
    if (!boot.ok) return commandTrouble('switch-to-configuration boot', boot.failure);
    return null;
  }

  /**
   * Re-activates the previous system and makes it the boot default again. Without a previous
   * system there is nothing to go back to: the result is 'failed'.
   */
  async rollback(record: ActivationRecord, trouble: Trouble, options: { reactivate?: boolean } = {}): Promise<LastResult> {
    const log = this.deps.logger.child({ version: record.manifestVersion, target: record.target });
    log.warn({ reason: trouble.reason, failure: trouble.failure }, 'activation failed, rolling back');
    const prev = record.previousSystem;
    await this.step(record, 'rolling-back', { reason: trouble.reason, previousSystem: prev });
    if (!prev) {
      return this.finish(record, 'failed', { ...trouble, reason: `${trouble.reason}; no previous system to roll back to` }, { previousSystem: null });
    }
    if (options.reactivate ?? true) {
      const back = await this.switch(record, prev, 'switch', 'rollback');
      if (!back.ok) {
        const rollbackTrouble = commandTrouble(`re-activating the previous system ${prev}`, back.failure);
        return this.finish(record, 'failed', { reason: `${trouble.reason}; then ${rollbackTrouble.reason}`, failure: rollbackTrouble.failure }, { previousSystem: prev });
      }
    }
    const profile = await this.deps.nix.setProfile(this.deps.paths.profile, prev);
    const boot = profile.ok ? await this.switch(record, prev, 'boot', 'rollback') : profile;
    if (!boot.ok) {
      const bootTrouble = commandTrouble('restoring the previous boot default', boot.failure);
      return this.finish(record, 'failed', { reason: `${trouble.reason}; then ${bootTrouble.reason}`, failure: bootTrouble.failure }, { previousSystem: prev });
    }
    return this.finish(record, 'rolled-back', trouble, { previousSystem: prev });
  }

  private async refuse(record: ActivationRecord, refusal: RefusalReason, reason: string, failure?: CommandFailure): Promise<LastResult> {
    this.deps.logger.warn({ version: record.manifestVersion, refusal, reason }, 'manifest refused');
    const detail: ReportDetail = { refusal, reason };
    if (failure) detail.failure = failure;
    return this.finish(record, 'refused', { reason, failure }, detail);
  }

  /** Persists the step, then reports it; returns the report's seq. */
  private async step(record: ActivationRecord, step: ActivationStep, detail: ReportDetail = {}): Promise<number> {
    record.step = step;
    return this.persistAndReport(
      () => this.deps.state.update((s) => {
        s.activation = { ...record };
      }),
      { phase: step === 'rebooting-back' ? 'rolling-back' : step, manifestVersion: record.manifestVersion, storePath: record.target, detail },
    );
  }

  /** Records, then reports; returns the report's seq (-1 when recovering and the report did not go out). */
  private async persistAndReport(persist: () => Promise<unknown>, report: Parameters<Reporter>[0]): Promise<number> {
    if (!this.bestEffort) {
      await persist();
      return (await this.deps.report(report)).seq;
    }
    await persist().catch((error: unknown) => this.deps.logger.error({ err: error, phase: report.phase }, 'could not record the activation step while recovering'));
    try {
      return (await this.deps.report(report)).seq;
    } catch (error) {
      this.deps.logger.error({ err: error, phase: report.phase }, 'could not report while recovering');
      return -1;
    }
  }

  /** Ends the activation: clears the record, remembers the result, reports it. */
  async finish(record: ActivationRecord, phase: Phase, trouble: Partial<Trouble>, extra: ReportDetail): Promise<LastResult> {
    const result: LastResult = { manifestVersion: record.manifestVersion, storePath: record.target, phase, at: this.deps.clock().toISOString() };
    if (trouble.reason) result.reason = trouble.reason;
    const detail: ReportDetail = { ...extra };
    if (trouble.reason && detail.reason === undefined) detail.reason = trouble.reason.slice(0, 4096);
    if (trouble.failure && detail.failure === undefined) detail.failure = trouble.failure;
    await this.persistAndReport(
      () => this.deps.state.update((s) => {
        s.activation = null;
        s.lastResult = result;
      }),
      { phase, manifestVersion: record.manifestVersion, storePath: record.target, detail },
    );
    this.deps.logger.info({ version: record.manifestVersion, phase, reason: trouble.reason }, 'activation finished');
    return result;
  }

  private switch(record: ActivationRecord, system: string, action: SwitchAction, kind: 'switch' | 'rollback'): Promise<RunResult> {
    return runSwitch(system, action, {
      timeoutMs: this.deps.timeouts.switchMs,
      onSpawn: this.deps.useSystemdRun
        ? undefined
        : (pid) => void this.rememberSwitch(record, pid),
      systemdUnit: this.deps.useSystemdRun ? `${unitName(kind, record.manifestVersion)}-${action}` : undefined,
      env: this.deps.env,
    });
  }

  /** Best effort: a failure here only loses the clean-up of an orphaned switch after a crash. */
  private async rememberSwitch(record: ActivationRecord, pid: number): Promise<void> {
    const identity = await processIdentity(pid);
    if (!identity) return;
    const state = this.deps.state.get();
    // The activation may have ended while we read /proc; never resurrect a finished record.
    if (state.activation?.manifestVersion !== record.manifestVersion) return;
    record.switchProcess = identity;
    await this.deps.state.update((s) => {
      if (s.activation?.manifestVersion === record.manifestVersion) s.activation = { ...record };
    }).catch(() => {});
  }

  private async failedUnitNames(): Promise<string[] | null> {
    const result = await failedUnits(this.deps.timeouts.commandMs);
    return 'units' in result ? result.units : null;
  }
}

/** "kernel, initrd differ from the booted system" / "switch inhibitors differ, a live switch is refused". */
function rebootsFor(policy: EffectiveRebootSettings['policy'], assessment: RebootAssessment): boolean {
  return policy === 'always' || (policy === 'when-needed' && assessment.needed);
}

/** "reboot policy never" and where it was set, for a pending-reboot reason. */
function policyText(settings: EffectiveRebootSettings): string {
  const where = { agent: ', set in the agent configuration', controller: ', set on the controller', default: '' }[settings.policyFrom];
  return `reboot policy ${settings.policy}${where}`;
}

export function describeReboot(assessment: RebootAssessment): string {
  const boot = assessment.reasons.filter((r) => r !== 'switch-inhibitors');
  const parts: string[] = [];
  if (boot.length > 0) parts.push(`${boot.join(', ')} differ${boot.length === 1 ? 's' : ''} from the booted system`);
  if (!assessment.liveSwitchPossible) parts.push('switch inhibitors differ, so a live switch is refused');
  return parts.join('; ') || 'no reboot needed';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
