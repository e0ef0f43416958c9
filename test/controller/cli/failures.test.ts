import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostList } from '../../../shared/src/operator-api.js';
import { RolloutStatus } from '../../../shared/src/rollout-api.js';
import { storePath } from '../helpers.js';
import { liveController, type LiveController } from '../server-helpers.js';
import { FakeAgent, operatorApi, shoal } from './cli-helpers.js';

// What real agents report: the command they ran and the last lines it printed (real Nix 2.8 output).
const fixture = (name: string) => readFileSync(join(import.meta.dirname, '..', '..', 'shared', 'fixtures', 'nix-failures', `${name}.txt`), 'utf8');
const MISSING = '/nix/store/hncn9wfflpm9158qy5gaqypds42h3vsc-nixos-system-web-1';
/** Output with its wrapped lines joined again, to look for a sentence wherever the terminal width broke it. */
const flat = (text: string) => text.replace(/\n\s+(?![│→])/g, ' ');

describe('shoal says why a host failed', () => {
  let ctl: LiveController;
  let env: Record<string, string>;
  let rolloutId: string;

  beforeAll(async () => {
    ctl = await liveController({ rolloutTickMs: 100 });
    env = { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken };
    const api = operatorApi(ctl.handle.url, ctl.operatorToken);
    const tags: Record<string, string[]> = { 'day-1': ['web'], 'day-2': ['web'], 'day-3': ['db'], 'day-4': ['db'] };
    const agents = new Map<string, FakeAgent>();
    for (const [name, t] of Object.entries(tags)) agents.set(name, await FakeAgent.register(ctl.handle.url, ctl.operatorToken, name, t));
    const members = ['day-1', 'day-2', 'day-3'];
    await api('POST', '/v1/releases', { name: 'v42', hosts: members.map((host) => ({ host, storePath: storePath(`nixos-system-${host}`, 'b') })) });
    const started = RolloutStatus.parse(await api('POST', '/v1/rollouts', { release: 'v42', waves: ['100%'], failureThreshold: { count: 5 } }));
    rolloutId = started.id;
    const current = RolloutStatus.parse(await api('GET', `/v1/rollouts/${rolloutId}`));
    agents.get('day-1')!.agentVersion = '0.1.0';
    await agents.get('day-1')!.report('healthy', current);
    await agents.get('day-2')!.report('failed', current, {
      reason: 'realising the closure failed (exit 1)',
      failure: { command: `nix-store --realise ${MISSING} --add-root /var/lib/shoal-agent/gcroots/desired --indirect`, exitCode: 1, signal: null, timedOut: false, outputTail: fixture('not-in-cache') },
    });
    await agents.get('day-3')!.report('rolled-back', current, {
      reason: 'switch-to-configuration test failed (exit 4)',
      current: storePath('nixos-system-day-3', 'a'),
      failure: { command: '/nix/store/x-nixos-system-day-3/bin/switch-to-configuration test', exitCode: 4, signal: null, timedOut: false, outputTail: fixture('unit-failed') },
    });
  });
  afterAll(() => ctl.close());

  it('shows a one-line summary, then under each failed host what it means and the last lines of the output', async () => {
    const result = await shoal(['status'], env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^4 hosts: \d healthy, 2 failed/);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    const day2 = lines.findIndex((l) => l.startsWith('day-2'));
    // The generation, the release and the rollout the host is on.
    expect(lines[day2]).toMatch(new RegExp(`^day-2\\s+failed\\s+#1\\*\\s+v42\\s+${rolloutId}\\s`));
    expect(flat(lines.slice(day2 + 1, day2 + 5).join('\n'))).toContain(`→ not in any cache: no substituter has ${MISSING}; was it pushed to the cache?`);
    expect(result.stdout).toContain(`    │ error: build of '${MISSING.slice(0, 40)}`);
    expect(flat(result.stdout)).toContain('unit nginx.service failed to start (journalctl -u nginx.service on the host');
    expect(result.stdout).toContain('    │         CPU: 21ms\n');
  });

  it('filters by failure, tag and rollout', async () => {
    const failed = await shoal(['status', '--failed'], env);
    const hostsOf = (out: string) => out.split('\n').filter((l) => /^day-\d/.test(l)).map((l) => l.split(' ')[0]);
    expect(hostsOf(failed.stdout)).toEqual(['day-2', 'day-3']);
    expect(failed.stdout.split('\n')[1]).toBe('showing 2 (failed)');
    expect(hostsOf((await shoal(['status', '--tag', 'db'], env)).stdout)).toEqual(['day-3', 'day-4']);
    expect(hostsOf((await shoal(['status', '--tag', 'web', '--failed'], env)).stdout)).toEqual(['day-2']);
    expect(hostsOf((await shoal(['status', '--rollout', rolloutId], env)).stdout)).toEqual(['day-1', 'day-2', 'day-3']);
    const none = await shoal(['status', '--rollout', 'ro-nope'], env);
    expect(none.stdout).toContain('(no hosts match)');
    const asJson = HostList.parse(JSON.parse((await shoal(['status', '--failed', '--json'], env)).stdout));
    expect(asJson.hosts.map((h) => h.name)).toEqual(['day-2', 'day-3']);
    expect(asJson.hosts[0]!.failure?.diagnosis?.kind).toBe('not-in-cache');
    // --json keeps the API's ISO 8601 UTC times.
    expect(asJson.hosts[0]!.failure?.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('shows the agent version with --wide', async () => {
    const lines = (await shoal(['status', '--wide'], env)).stdout.split('\n');
    expect(lines.find((l) => l.startsWith('HOST'))).toMatch(/CURRENT\s+DESIRED\s+AGENT$/);
    expect(lines.find((l) => l.startsWith('day-1'))).toMatch(/\s0\.1\.0$/);
    expect(lines.find((l) => l.startsWith('day-4'))).toMatch(/\s-$/);
  });

  it('tells the history as sentences, with the failing output under the failure', async () => {
    const result = await shoal(['history', 'day-2'], env);
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  test-admin registered the host with tags web$/);
    expect(result.stdout).toMatch(new RegExp(`UTC  generation #1 issued by rollout ${rolloutId}: \\w{7}-nixos-system-day-2 \\(safe-switch\\)`));
    expect(result.stdout).toContain('UTC  host failed on generation #1: realising the closure failed (exit 1)\n');
    expect(flat(result.stdout)).toContain('was it pushed to the cache?');
    expect(result.stdout).not.toMatch(/[{}]/);
  });

  it('shows the failing output under each failed host of a rollout', async () => {
    const result = await shoal(['rollout', 'status', rolloutId], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('  day-2: failed: realising the closure failed (exit 1)\n    → not in any cache');
    expect(result.stdout).toContain(`    │ error: build of '${MISSING.slice(0, 40)}`);
    expect(flat(result.stdout)).toContain('unit nginx.service failed to start');
  });
});
