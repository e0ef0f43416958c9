import { describe, expect, it } from 'vitest';
import { effectiveRebootSettings } from '../../agent/src/reboot-settings.js';

const NIGHT = { days: ['sat' as const], start: '02:00', end: '05:00', timeZone: 'UTC' };
const DAY = { days: ['mon' as const], start: '10:00', end: '12:00', timeZone: 'UTC' };

describe('effectiveRebootSettings: agent configuration over the controller’s signed settings over the defaults', () => {
  it('takes the controller’s policy and windows when the agent sets none', () => {
    expect(effectiveRebootSettings({ windowsApplyTo: 'reboots' }, { policy: 'when-needed', windows: [[NIGHT], [DAY]], windowsForAll: false })).toEqual({
      policy: 'when-needed',
      policyFrom: 'controller',
      windows: [[NIGHT], [DAY]],
      windowsFrom: 'controller',
      windowsForAll: false,
    });
  });

  it('lets the agent’s own configuration win, field by field', () => {
    const signed = { policy: 'always' as const, windows: [[NIGHT]], windowsForAll: false };
    expect(effectiveRebootSettings({ policy: 'never', windowsApplyTo: 'reboots' }, signed)).toMatchObject({ policy: 'never', policyFrom: 'agent', windows: [[NIGHT]], windowsFrom: 'controller' });
    expect(effectiveRebootSettings({ maintenanceWindows: [], windowsApplyTo: 'reboots' }, signed)).toMatchObject({ policy: 'always', policyFrom: 'controller', windows: [[]], windowsFrom: 'agent' });
  });

  it('falls back to never and always-open with nothing set anywhere (a controller from before these settings)', () => {
    expect(effectiveRebootSettings({ windowsApplyTo: 'reboots' }, undefined)).toEqual({ policy: 'never', policyFrom: 'default', windows: [], windowsFrom: 'default', windowsForAll: false });
  });

  it('holds every activation for the windows when either the rollout or the agent asks for it', () => {
    expect(effectiveRebootSettings({ windowsApplyTo: 'reboots' }, { policy: null, windows: null, windowsForAll: true }).windowsForAll).toBe(true);
    expect(effectiveRebootSettings({ windowsApplyTo: 'all' }, { policy: null, windows: null, windowsForAll: false }).windowsForAll).toBe(true);
  });
});
