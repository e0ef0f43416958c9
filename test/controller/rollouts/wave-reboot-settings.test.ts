import { describe, expect, it } from 'vitest';
import type { Envelope } from '../../../shared/src/envelope.js';
import type { ManifestPayload } from '../../../shared/src/protocol.js';
import type { MaintenanceWindow } from '../../../shared/src/windows.js';
import { setHostRebootSettings, setTagRebootSettings } from '../../../controller/src/hosts/reboot-settings.js';
import { desiredManifest } from '../helpers.js';
import { lab } from './engine-lab.js';

const NIGHT: MaintenanceWindow = { days: ['sat', 'sun'], start: '02:00', end: '05:00', timeZone: 'Europe/Berlin' };

/** What a host's desired manifest tells its agent about rebooting, as the agent reads it after verifying the signature. */
async function signedReboot(store: Parameters<typeof desiredManifest>[0], host: string): Promise<ManifestPayload['reboot']> {
  const envelope = JSON.parse((await desiredManifest(store, host))!.envelope) as Envelope;
  return (JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as ManifestPayload).reboot;
}

describe('reboot settings in the manifests of a wave', () => {
  it('signs each host’s effective settings (its tags’, or its own over them) and the rollout’s windows rule into its manifest', async () => {
    const l = await lab(3, (i) => (i === 3 ? [] : ['db']));
    const { store, clock } = l.ctl;
    await setTagRebootSettings(store, clock, 'db', { policy: 'when-needed', windows: [NIGHT] }, 'operator:test');
    expect(await setHostRebootSettings(store, clock, 'h2', { policy: 'never' }, 'operator:test')).toEqual({ ok: true });
    await l.start({ waves: ['100%'], activateWithinWindows: true });
    expect(await signedReboot(store, 'h1')).toEqual({ policy: 'when-needed', windows: [[NIGHT]], windowsForAll: true });
    expect(await signedReboot(store, 'h2')).toEqual({ policy: 'never', windows: [[NIGHT]], windowsForAll: true });
    expect(await signedReboot(store, 'h3')).toEqual({ policy: null, windows: null, windowsForAll: true });
  });
});
