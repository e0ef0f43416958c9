import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type Report } from '../../../shared/src/protocol.js';
import type { SystemFacts } from '../../../shared/src/release-statement.js';
import { planLines } from '../../../controller/src/cli/rollout-format.js';
import { RolloutPlan } from '../../../shared/src/rollout-api.js';
import { postJson, registeredHost, sessionFor, signedBundle, storePath, testController, type TestController } from '../helpers.js';

/** `shoal rollout plan` says which hosts will reboot: the release's facts against those of the system each host runs. */
describe('reboot predictions in the rollout plan', () => {
  let ctl: TestController;
  afterEach(async () => await ctl.close());

  const file = (name: string, char: string, sub = '') => `${storePath(name, char)}${sub}`;
  const facts = (kernel: string, inhibitors: string | null): SystemFacts => ({
    closureBytes: 1000,
    kernel: file(`linux-${kernel}`, 'k', '/bzImage'),
    initrd: file(`initrd-${kernel}`, 'i', '/initrd'),
    kernelModules: file(`linux-${kernel}-modules`, 'm'),
    switchInhibitors: inhibitors,
  });

  async function running(name: string, system: string): Promise<void> {
    const host = await registeredHost(ctl, name);
    const session = await sessionFor(ctl, host);
    const report: Report = { seq: 1, at: new Date(ctl.clock.now()).toISOString(), phase: 'reconciled', manifestVersion: null, storePath: null, currentSystem: system, detail: {} };
    const response = await postJson(ctl, '/v1/agent/reports', { protocol: PROTOCOL_VERSION, reports: [report] }, { authorization: `Bearer ${session}` });
    expect(response.status).toBeLessThan(300);
  }

  it('predicts reboot for a kernel or inhibitor change, live for neither, unknown without facts', async () => {
    ctl = await testController({ mode: 'two-key' });
    const old = (host: string) => storePath(`nixos-system-${host}-1`, 'b');
    const next = (host: string) => storePath(`nixos-system-${host}-2`, 'c');
    const hosts = ['db-1', 'web-1', 'web-2', 'new-1'];
    for (const host of hosts) await running(host, old(host));
    // What the hosts run now, as an earlier release described it.
    const r1 = signedBundle(ctl.ciKey, 'r1', hosts.filter((h) => h !== 'new-1').map((host) => ({ host, storePath: old(host), facts: facts('6.6', 'systemd 257') })), { floor: 1 });
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(r1) })).status).toBe(201);
    const r2 = signedBundle(ctl.ciKey, 'r2', [
      { host: 'db-1', storePath: next('db-1'), facts: facts('6.12', 'systemd 257') },
      { host: 'web-1', storePath: next('web-1'), facts: facts('6.6', 'systemd 258') },
      { host: 'web-2', storePath: next('web-2'), facts: facts('6.6', 'systemd 257') },
      { host: 'new-1', storePath: next('new-1'), facts: facts('6.6', 'systemd 257') },
    ], { floor: 1 });
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(r2) })).status).toBe(201);

    const response = await ctl.operator('/v1/rollouts/plan', { method: 'POST', body: JSON.stringify({ release: 'r2', waves: ['100%'] }) });
    expect(response.status).toBe(200);
    const plan = RolloutPlan.parse(await response.json());
    expect(plan.reboots).toEqual([
      { host: 'db-1', prediction: 'reboot', reasons: ['kernel', 'initrd', 'kernel-modules'] },
      { host: 'new-1', prediction: 'unknown', reasons: [] },
      { host: 'web-1', prediction: 'reboot', reasons: ['switch-inhibitors'] },
      { host: 'web-2', prediction: 'live', reasons: [] },
    ]);
    const plain = (text: string) => text;
    const printed = planLines(plan, null, { red: plain, green: plain, yellow: plain, dim: plain, bold: plain });
    expect(printed).toContain('2 hosts will reboot: db-1 (kernel, initrd, kernel-modules), web-1\n  (switch-inhibitors)\n');
    expect(printed).toContain('reboot not known (no system facts): new-1\n');
    for (const line of printed.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  });
});
