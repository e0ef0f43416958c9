import { afterEach, describe, expect, it } from 'vitest';
import { createOperatorToken } from '../../../controller/src/auth/operator-tokens.js';
import { requestRebootGrant } from '../../../controller/src/hosts/reboot-grants.js';
import type { Envelope } from '../../../shared/src/envelope.js';
import type { ManifestPayload } from '../../../shared/src/protocol.js';
import { HostRebootSettings } from '../../../shared/src/reboot-settings.js';
import { desiredManifest, registeredHost, storePath, testController, type TestController } from '../helpers.js';

const NIGHT = { days: ['sat', 'sun'], start: '02:00', end: '05:00', timeZone: 'Europe/Berlin' };
const WEEKNIGHT = { days: ['mon', 'tue', 'wed', 'thu'], start: '22:00', end: '23:30', timeZone: 'UTC' };
const LOCK = { maxConcurrent: 10, leaseMs: 30 * 60_000 };

describe('reboot settings per host and tag', () => {
  let ctl: TestController;
  afterEach(async () => await ctl.close());

  const put = (path: string, body: unknown, token?: string) =>
    ctl.operator(path, { method: 'PUT', body: JSON.stringify(body), ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  const view = async (host: string) => HostRebootSettings.parse(await (await ctl.operator(`/v1/hosts/${host}/reboot-settings`)).json());
  /** What the host's newest manifest carries, as the agent reads it after verifying the signature. */
  const signed = async (host: string, i: number) => {
    const response = await ctl.operator(`/v1/hosts/${host}/desired`, { method: 'PUT', body: JSON.stringify({ storePath: storePath(`nixos-system-${host}`, 'abcdefgh'[i]!) }) });
    expect(response.status).toBe(200);
    const envelope = JSON.parse((await desiredManifest(ctl.store, host))!.envelope) as Envelope;
    return (JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as ManifestPayload).reboot;
  };

  it('resolves tags to the strictest (lowest policy, every tag’s windows at once), lets the host override them, and signs the result into its manifest', async () => {
    ctl = await testController();
    await registeredHost(ctl, 'db-1', ['db', 'eu', 'web']);
    expect(await signed('db-1', 0)).toEqual({ policy: null, windows: null, windowsForAll: false });

    expect((await put('/v1/tags/web/reboot-settings', { policy: 'always' })).status).toBe(200);
    expect((await put('/v1/tags/db/reboot-settings', { policy: 'when-needed', windows: [WEEKNIGHT], maxRebooting: 1 })).status).toBe(200);
    expect((await put('/v1/tags/eu/reboot-settings', { windows: [NIGHT] })).status).toBe(200);
    const fromTags = await view('db-1');
    expect(fromTags.effective).toMatchObject({ policy: 'when-needed', policyFrom: 'tag:db', windows: [[WEEKNIGHT], [NIGHT]], windowsFrom: ['tag:db', 'tag:eu'], locks: [{ tag: 'db', maxRebooting: 1 }] });
    // Weeknights and weekend nights never overlap: the host would never activate, and says so.
    expect(fromTags.effective.windowsOpenAt).toBeNull();
    expect(await signed('db-1', 1)).toEqual({ policy: 'when-needed', windows: [[WEEKNIGHT], [NIGHT]], windowsForAll: false });

    // The host's own settings win over every tag's; [] is "always open", null inherits again.
    const own = await put('/v1/hosts/db-1/reboot-settings', { policy: 'never', windows: [] });
    expect(own.status).toBe(200);
    expect(HostRebootSettings.parse(await own.json()).effective).toMatchObject({ policy: 'never', policyFrom: 'host', windows: [[]], windowsFrom: ['host'] });
    expect(await signed('db-1', 2)).toEqual({ policy: 'never', windows: [[]], windowsForAll: false });
    expect((await put('/v1/hosts/db-1/reboot-settings', { policy: null })).status).toBe(200);
    expect((await view('db-1')).effective).toMatchObject({ policy: 'when-needed', policyFrom: 'tag:db', windows: [[]] });

    const events = await (await ctl.operator('/v1/hosts/db-1/events')).json();
    expect((events as { events: Array<{ kind: string; actor: string }> }).events.filter((e) => e.kind === 'reboot-settings-set')).toHaveLength(2);
  });

  it('refuses bad settings naming what is wrong, and a read-only token', async () => {
    ctl = await testController();
    await registeredHost(ctl, 'db-1');
    const bad = async (path: string, body: unknown, status: number, message: RegExp) => {
      const response = await put(path, body);
      expect(response.status).toBe(status);
      expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(message);
    };
    await bad('/v1/hosts/db-1/reboot-settings', { policy: 'sometimes' }, 400, /policy/);
    await bad('/v1/hosts/db-1/reboot-settings', { windows: [{ days: ['sat'], start: '25:00', end: '04:00' }] }, 400, /HH:MM/);
    await bad('/v1/tags/db/reboot-settings', { windows: [{ days: ['sat'], start: '01:00', end: '04:00', timeZone: 'Mars/Olympus' }] }, 400, /IANA time zone/);
    await bad('/v1/hosts/db-1/reboot-settings', { maxRebooting: 1 }, 400, /reboot lock over a tag/);
    await bad('/v1/hosts/nope/reboot-settings', { policy: 'never' }, 404, /no host named "nope"/);
    await bad('/v1/tags/Not%20A%20Tag/reboot-settings', { policy: 'never' }, 400, /tag must be/);
    const { token } = await createOperatorToken(ctl.store, ctl.clock, 'reader', 'read');
    const response = await put('/v1/tags/db/reboot-settings', { policy: 'always' }, token);
    expect(response.status).toBe(403);
    expect((await ctl.operator('/v1/tags/reboot-settings').then((r) => r.json())) as unknown).toEqual({ tags: [] });
  });

  it('grants a reboot only while every lock that applies has room: the fleet’s, each tag’s, the rollout’s', async () => {
    ctl = await testController();
    for (const name of ['db-1', 'db-2', 'web-1', 'web-2', 'web-3']) await registeredHost(ctl, name, [name.slice(0, -2)]);
    expect((await put('/v1/tags/db/reboot-settings', { maxRebooting: 1 })).status).toBe(200);
    const release = { name: 'k2', hosts: ['web-1', 'web-2', 'web-3'].map((host, i) => ({ host, storePath: storePath(`nixos-system-${host}`, 'cdf'[i]!) })) };
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(release) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'k2', waves: ['100%'], maxRebooting: 2 }) });
    const { id } = (await started.json()) as { id: string };
    const version = async (host: string) => (await desiredManifest(ctl.store, host))?.version ?? 1;
    const ask = async (host: string) => requestRebootGrant(ctl.store, ctl.clock, LOCK, host, await version(host));

    expect((await ask('db-1')).granted).toBe(true);
    expect(await ask('db-2')).toMatchObject({ granted: false, reason: '1 host of tag db rebooting (db-1); at most 1 of tag db at once' });
    expect((await ask('web-1')).granted).toBe(true);
    expect((await ask('web-2')).granted).toBe(true);
    expect(await ask('web-3')).toMatchObject({ granted: false, reason: `2 hosts of rollout ${id} rebooting (web-1, web-2); at most 2 of rollout ${id} at once` });
    // The fleet-wide lock still counts everyone.
    expect(await requestRebootGrant(ctl.store, ctl.clock, { ...LOCK, maxConcurrent: 3 }, 'db-2', 1)).toMatchObject({ granted: false, reason: expect.stringMatching(/^3 hosts rebooting/) });
  });
});
