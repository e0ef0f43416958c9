import * as z from 'zod';

/**
 * Whether a new system needs a reboot, decided the same way on the agent (from the systems on
 * disk) and on the controller (from the facts a release carries): a reboot is needed when the
 * kernel, initrd or kernel modules differ from the booted system (what NixOS itself compares),
 * and a live switch is not possible at all when the `switch-inhibitors` of the running and the
 * new system differ (switch-to-configuration refuses it since 2026).
 */

/** reboot policy of a host: `never` leaves a reboot to someone else (`pending-reboot`). */
export const RebootPolicy = z.enum(['never', 'when-needed', 'always']);
export type RebootPolicy = z.infer<typeof RebootPolicy>;

/** What an agent reports before it activates (and the controller predicts before a rollout). */
export const RebootAssessment = z
  .object({
    needed: z.boolean(),
    liveSwitchPossible: z.boolean(),
    /** What differs, e.g. "kernel", "initrd", "switch-inhibitors". */
    reasons: z.array(z.string().max(200)).max(10),
  })
  .strict();
export type RebootAssessment = z.infer<typeof RebootAssessment>;

/** The parts of a system that decide about reboots (null: the system has none, or it is unknown). */
export interface BootFacts {
  kernel: string | null;
  initrd: string | null;
  kernelModules: string | null;
  switchInhibitors: string | null;
}

export function assessReboot(booted: BootFacts, running: BootFacts, target: BootFacts): RebootAssessment {
  const reasons: string[] = [];
  if (booted.kernel !== target.kernel) reasons.push('kernel');
  if (booted.initrd !== target.initrd) reasons.push('initrd');
  if (booted.kernelModules !== target.kernelModules) reasons.push('kernel-modules');
  const liveSwitchPossible = normaliseInhibitors(running.switchInhibitors) === normaliseInhibitors(target.switchInhibitors);
  if (!liveSwitchPossible) reasons.push('switch-inhibitors');
  return { needed: reasons.length > 0, liveSwitchPossible, reasons };
}

/** A trailing newline is how the file ends, not part of the value. */
function normaliseInhibitors(value: string | null): string | null {
  return value === null ? null : value.replace(/\n+$/, '');
}
