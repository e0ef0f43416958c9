import type { RebootPolicy } from '../../shared/src/reboot.js';
import type { ManifestRebootSettings } from '../../shared/src/reboot-settings.js';
import type { MaintenanceWindow } from '../../shared/src/windows.js';

/**
 * The reboot policy and windows one activation goes by. Precedence, field by field: the agent's
 * own configuration (a host that must decide locally) over what the controller signed into the
 * manifest (set per host or tag there) over the defaults (policy never, no windows). Windows hold
 * back every activation, not only reboots, when the local windowsApplyTo says "all" or the
 * rollout asked for it (activateWithinWindows): either may only add restraint.
 */

export interface LocalRebootSettings {
  /** Unset in the agent's configuration: the controller decides. */
  policy?: RebootPolicy;
  maintenanceWindows?: MaintenanceWindow[];
  windowsApplyTo: 'reboots' | 'all';
}

export type SettingOrigin = 'agent' | 'controller' | 'default';

export interface EffectiveRebootSettings {
  policy: RebootPolicy;
  policyFrom: SettingOrigin;
  /** Open while one window of every group is open; no groups: always open. */
  windows: MaintenanceWindow[][];
  windowsFrom: SettingOrigin;
  windowsForAll: boolean;
}

export function effectiveRebootSettings(local: LocalRebootSettings, signed: ManifestRebootSettings | null | undefined): EffectiveRebootSettings {
  const [policy, policyFrom]: [RebootPolicy, SettingOrigin] =
    local.policy !== undefined ? [local.policy, 'agent'] : signed?.policy ? [signed.policy, 'controller'] : ['never', 'default'];
  const [windows, windowsFrom]: [MaintenanceWindow[][], SettingOrigin] =
    local.maintenanceWindows !== undefined
      ? [[local.maintenanceWindows], 'agent']
      : signed?.windows
        ? [signed.windows, 'controller']
        : [[], 'default'];
  return { policy, policyFrom, windows, windowsFrom, windowsForAll: local.windowsApplyTo === 'all' || signed?.windowsForAll === true };
}
