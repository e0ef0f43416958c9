import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type Report } from '../../../shared/src/protocol.js';
import { postJson, registeredHost, sessionFor, storePath, testController, type TestController } from '../helpers.js';
import { signedIn } from './session-helpers.js';

/** The rollout picture tells rebooting, staged (with its window's opening) and waiting-for-a-grant hosts apart. */
describe('reboot phases on the rollout page', () => {
  let ctl: TestController;
  afterEach(async () => await ctl.close());

  it('shows each host’s reboot phase and when a staged host’s window opens', async () => {
    ctl = await testController();
    const names = ['web-1', 'web-2', 'web-3', 'web-4'];
    const keys = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await registeredHost(ctl, n)] as const)));
    const release = { name: 'k2', hosts: names.map((host, i) => ({ host, storePath: storePath(`nixos-system-${host}`, 'cdfg'[i]!) })) };
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(release) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'k2', waves: ['100%'] }) });
    const { id } = (await started.json()) as { id: string };
    const said: Record<string, Pick<Report, 'phase' | 'detail'>> = {
      'web-1': { phase: 'staged', detail: { reason: 'realised', windowOpensAt: '2030-01-04T21:00:00.000Z' } },
      'web-2': { phase: 'rebooting', detail: { reason: 'kernel differs' } },
      'web-3': { phase: 'awaiting-reboot-grant', detail: { reason: 'web-2 rebooting; at most 1 at once' } },
      'web-4': { phase: 'realising', detail: {} },
    };
    for (const [host, report] of Object.entries(said)) {
      const session = await sessionFor(ctl, keys[host]!);
      const body: Report = { seq: 1, at: new Date(ctl.clock.now()).toISOString(), manifestVersion: 1, storePath: null, currentSystem: storePath('old', 'b'), ...report };
      expect((await postJson(ctl, '/v1/agent/reports', { protocol: PROTOCOL_VERSION, reports: [body] }, { authorization: `Bearer ${session}` })).status).toBe(200);
    }
    const page = await (await (await signedIn(ctl)).get(`/dashboard/rollouts/${id}`)).text();
    const cell = (host: string) => new RegExp(`title="${host}: ([^"]*)"[^>]*data-phase="([^"]*)"`).exec(page)?.slice(1);
    expect(cell('web-1')).toEqual(['staged, window opens 2030-01-04T21:00:00.000Z', 'staged']);
    expect(cell('web-2')).toEqual(['rebooting', 'rebooting']);
    expect(cell('web-3')).toEqual(['waiting for a reboot grant', 'awaiting-reboot-grant']);
    expect(page).toContain('1 rebooting');
    expect(page).toContain('1 staged for their window');
    expect(page).toContain('1 waiting for a reboot grant');
  });
});
