import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutPlan, RolloutPlanReport, RolloutStatus } from '../../../shared/src/rollout-api.js';
import { runCli } from '../../../controller/src/cli/run.js';
import { storePath } from '../helpers.js';
import { liveController, type LiveController } from '../server-helpers.js';
import { FakeAgent, operatorApi, shoal, startCli } from './cli-helpers.js';

const NEW = (host: string) => storePath(`nixos-system-${host}`, 'b');
const OLD = (host: string) => storePath(`nixos-system-${host}`, 'a');

describe('shoal rollout', () => {
  let ctl: LiveController;
  let env: Record<string, string>;
  let api: ReturnType<typeof operatorApi>;
  const agents = new Map<string, FakeAgent>();

  /** Registers hosts `prefix-1..n` and a release of all of them. */
  async function fleet(prefix: string, count: number, tags: (i: number) => string[] = () => []): Promise<string[]> {
    const names = Array.from({ length: count }, (_, i) => `${prefix}-${i + 1}`);
    for (const [i, name] of names.entries()) agents.set(name, await FakeAgent.register(ctl.handle.url, ctl.operatorToken, name, tags(i)));
    await api('POST', '/v1/releases', { name: prefix, hosts: names.map((host) => ({ host, storePath: NEW(host) })) });
    return names;
  }
  const status = (id: string) => api<RolloutStatus>('GET', `/v1/rollouts/${id}`).then((s) => RolloutStatus.parse(s));
  const inFlight = (s: RolloutStatus) => s.waves.flatMap((w) => w.hosts).filter((h) => h.state === 'issued' || h.state === 'in-progress');

  beforeAll(async () => {
    ctl = await liveController({ rolloutTickMs: 100 });
    env = { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken };
    api = operatorApi(ctl.handle.url, ctl.operatorToken);
  });
  afterAll(() => ctl.close());

  it('plans waves with their hosts in order, marks the canary and the approval gates, within 80 columns', async () => {
    await fleet('plan', 12, (i) => (i < 2 ? ['db'] : ['web']));
    const flags = ['--canary', '1', '--waves', '25%,hosts:plan-3+plan-4,tags:db,100%', '--approve-before', '3', '--bake', '5m', '--max-failures', '10%', '--min-sample', '4'];
    const [human, asJson] = await Promise.all([shoal(['rollout', 'plan', 'plan', ...flags], env), shoal(['rollout', 'plan', 'plan', ...flags, '--json'], env)]);
    expect(human.stderr).toBe('');
    expect(human.code).toBe(0);
    const plan = RolloutPlan.parse(JSON.parse(asJson.stdout));
    expect(plan.waves.map((w) => [w.index, w.canary, w.needsApproval, w.hosts.length])).toEqual([
      [0, true, false, 1],
      [1, false, false, 2],
      [2, false, true, 2],
      [3, false, false, plan.waves[3]!.hosts.length],
      [4, false, false, plan.waves[4]!.hosts.length],
    ]);
    expect(plan.waves[2]!.hosts).toEqual(['plan-3', 'plan-4'].filter((h) => !plan.waves[0]!.hosts.includes(h) && !plan.waves[1]!.hosts.includes(h)));

    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('release plan: 12 hosts in 5 waves');
    expect(human.stdout).toContain('at most 10% failed once 4 finished · bake 5m');
    // Waves as people count them: the canary is wave 1.
    expect(lines).toContain(`wave 1  canary                  1 host     ${plan.waves[0]!.hosts[0]}`);
    expect(lines.find((l) => l.startsWith('wave 3'))).toMatch(/^wave 3  approval first\s+2 hosts\s+plan-\d+, plan-\d+$/);
    expect(lines).toContain('waits for `shoal rollout approve` before wave 3');
    // Unsigned lab releases carry no system facts: no reboot prediction, and it says why.
    expect(lines).toContain('reboots not known: the release has no system facts');
    // Every host appears once, in the order the plan gives.
    const named = human.stdout.match(/plan-\d+/g)!.filter((h) => h !== 'plan');
    expect(named).toEqual(plan.waves.flatMap((w) => w.hosts));
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('refuses a bad spec with the reasons the controller gives, one per line', async () => {
    await fleet('spec', 3);
    const [tooMuch, gaps, badFlag, badAction] = await Promise.all([
      shoal(['rollout', 'plan', 'spec', '--waves', '140%'], env),
      shoal(['rollout', 'plan', 'spec', '--waves', '50%,25%', '--approve-before', '7'], env),
      shoal(['rollout', 'start', 'spec', '--max-failures', 'many'], env),
      shoal(['rollout', 'start', 'spec', '--action', 'reboot'], env),
    ]);
    expect(tooMuch).toMatchObject({ code: 1, stdout: '' });
    expect(tooMuch.stderr).toMatch(/^shoal: invalid request: waves\.0: a wave percentage must be above 0% and at most 100% \(invalid-request, HTTP 400\)\n$/);
    expect(gaps.stderr.split('\n')).toEqual([
      'shoal: rollout refused (invalid-rollout, HTTP 400):',
      '  wave 2 (25%) would cover fewer hosts (1) than the waves before it (2); waves are cumulative',
      '  approvalBefore names position 6 (wave 7), but the rollout has 2 waves (positions 0 to 1)',
      expect.stringMatching(/^  the waves cover 2 of 3 selected hosts; 1 \(spec-\d\) are in no wave — end with "100%"$/),
      '',
    ]);
    expect(badFlag).toMatchObject({ code: 2, stderr: 'shoal: --max-failures must be a whole number, got "many"\n' });
    expect(badAction.stderr).toBe('shoal: --action must be one of safe-switch, switch, boot, dry-activate, got "reboot"\n');
    expect((await api<{ rollouts: unknown[] }>('GET', '/v1/rollouts')).rollouts).toHaveLength(0);
  });

  it('starts a rollout, shows its status, and approves, pauses, resumes and aborts it', async () => {
    await fleet('gate', 4);
    const started = await shoal(['rollout', 'start', 'gate', '--canary', '1', '--waves', '100%', '--approve-before', '2', '--json'], env);
    expect(started.stderr).toBe('');
    const id = RolloutStatus.parse(JSON.parse(started.stdout)).id;
    let current = await status(id);
    const canary = current.waves[0]!.hosts[0]!.host;
    expect(inFlight(current).map((h) => h.host)).toEqual([canary]);
    await agents.get(canary)!.report('healthy', current);

    const shown = await shoal(['rollout', 'status', id], env);
    expect(shown.code).toBe(0);
    const lines = shown.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`rollout ${id} · release gate · waiting-approval`);
    expect(lines[1]).toBe('wave 2 of 2 · failures 0 (max 0) · 1/4 finished');
    expect(lines).toContain('WAVE              PENDING  IN PROG  HEALTHY  FAILED  SKIPPED  STATE');
    expect(lines).toContain('1 canary                0        0        1       0        0  done');
    expect(lines).toContain('2 approval              3        0        0       0        0  waiting approval');
    expect(lines.at(-1)).toBe(`waiting: run \`shoal rollout approve ${id}\` to start wave 2 of 2`);

    expect(await shoal(['rollout', 'approve', id], env)).toMatchObject({ code: 0, stdout: `approved rollout ${id}; now running at wave 2 of 2\n` });
    current = await status(id);
    expect(inFlight(current)).toHaveLength(3);
    expect(await shoal(['rollout', 'pause', id], env)).toMatchObject({ code: 0, stdout: `paused rollout ${id}; now paused at wave 2 of 2\n` });
    const again = await shoal(['rollout', 'pause', id], env);
    expect(again).toMatchObject({ code: 1, stderr: `shoal: rollout ${id} is paused; pause applies only to a rollout that is running or waiting-approval (invalid-transition, HTTP 409)\n` });
    expect(await shoal(['rollout', 'resume', id], env)).toMatchObject({ code: 0, stdout: `resumed rollout ${id}; now running at wave 2 of 2\n` });
    const aborted = await shoal(['rollout', 'abort', id, '--json'], env);
    expect(RolloutStatus.parse(JSON.parse(aborted.stdout))).toMatchObject({ state: 'aborted', reason: 'aborted by operator:test-admin' });

    const list = await shoal(['rollout', 'list'], env);
    expect(list.stdout.split('\n')).toContain(`${id}  gate          aborted           2/2    4      ${current.createdAt.slice(0, 10)} ${current.createdAt.slice(11, 16)} UTC`);
  });

  it('warns in the plan about paused hosts: which, in which wave, and that their wave will wait for them', async () => {
    const names = await fleet('held', 6);
    const plan = RolloutPlanReport.parse(JSON.parse((await shoal(['rollout', 'plan', 'held', '--waves', '50%,100%', '--json'], env)).stdout));
    expect(plan.paused).toEqual([]);
    const [early, late] = [plan.waves[0]!.hosts[1]!, plan.waves[1]!.hosts[0]!];
    for (const host of [late, early]) expect((await shoal(['host', 'pause', host], env)).code).toBe(0);

    const [human, asJson] = await Promise.all([
      shoal(['rollout', 'plan', 'held', '--waves', '50%,100%'], env),
      shoal(['rollout', 'plan', 'held', '--waves', '50%,100%', '--json'], env),
    ]);
    expect(RolloutPlanReport.parse(JSON.parse(asJson.stdout)).paused).toEqual([
      { host: early, wave: 1 },
      { host: late, wave: 2 },
    ]);
    const text = human.stdout.replace(/\s+/g, ' ');
    expect(text).toContain(`2 hosts paused (shoal host pause): ${early} (wave 1), ${late} (wave 2)`);
    expect(text).toContain('The rollout will not issue them while they are paused: each stays pending, neither failed nor skipped, and its wave waits for it: no later wave starts, nor does the rollout finish, until it is resumed (shoal host resume NAME).');
    expect(text).toContain('With no progress deadline, the rollout waits for them as long as they stay paused.');
    expect(human.stdout.split('\n').every((line) => line.length <= 80)).toBe(true);
    const deadline = await shoal(['rollout', 'plan', 'held', '--waves', '50%,100%', '--progress-deadline', '30m'], env);
    expect(deadline.stdout.replace(/\s+/g, ' ')).toContain('With nothing else moving for 30m (the progress deadline), the rollout halts.');

    // And so the rollout does: the paused host of wave 1 stays pending, and wave 2 does not start.
    const started = RolloutStatus.parse(JSON.parse((await shoal(['rollout', 'start', 'held', '--waves', '50%,100%', '--json'], env)).stdout));
    const issued = await status(started.id);
    for (const host of plan.waves[0]!.hosts.filter((h) => h !== early)) await agents.get(host)!.report('healthy', issued);
    await expect.poll(async () => (await status(started.id)).waves[0]!.counts).toMatchObject({ healthy: 2, pending: 1 });
    const waiting = await status(started.id);
    expect(waiting).toMatchObject({ state: 'running', waveIndex: 0 });
    expect(waiting.waves[0]!.hosts.find((h) => h.host === early)).toMatchObject({ state: 'pending', paused: true });
    expect(waiting.waves[1]!.counts.pending).toBe(3);
    expect(inFlight(waiting)).toEqual([]);
    await api('POST', `/v1/rollouts/${started.id}/abort`);
    expect(names).toContain(early);
  });

  it('refuses a rollout over hosts another active rollout owns, naming that rollout', async () => {
    await fleet('busy', 2);
    const first = RolloutStatus.parse(JSON.parse((await shoal(['rollout', 'start', 'busy', '--json'], env)).stdout));
    const second = await shoal(['rollout', 'start', 'busy'], env);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^shoal: rollout refused: rollout ${first.id} is still active on 2 of these hosts \\(busy-\\d, busy-\\d\\); wait for it, or abort it first \\(rollout-overlap, HTTP 409\\)\\n$`));
    await api('POST', `/v1/rollouts/${first.id}/abort`);
  });

  it('watch prints one line per change and exits non-zero when the canary fails and the rollout halts', async () => {
    await fleet('halt', 3);
    const id = RolloutStatus.parse(JSON.parse((await shoal(['rollout', 'start', 'halt', '--canary', '1', '--waves', '100%', '--json'], env)).stdout)).id;
    const watch = startCli(['rollout', 'watch', id], env);
    await watch.waitFor('generation #1 issued (wave 1 of 2)');
    const current = await status(id);
    const canary = current.waves[0]!.hosts[0]!.host;
    await agents.get(canary)!.report('rolled-back', current, { reason: 'switch-to-configuration failed', current: OLD(canary) });
    const result = await watch.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`shoal: rollout ${id} halted: 1 host(s) failed; at most 0 allowed\n`);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe(`watching rollout ${id}`);
    expect(lines.slice(1, 7).map((l) => l.replace(/^\d\d:\d\d:\d\d {2}/, ''))).toEqual([
      'started: waves of 1, 2 hosts by operator:test-admin',
      'canary (wave 1 of 2) started: 1 host',
      `${canary}: generation #1 issued (wave 1 of 2)`,
      `${canary}: rolled-back: switch-to-configuration failed`,
      'halted: 1 host(s) failed; at most 0 allowed',
      '',
    ]);
    expect(result.stdout).toContain(`failed or skipped hosts:\n  ${canary}: rolled-back: switch-to-configuration failed\n`);
    expect(result.stdout).not.toContain('\x1b');
    // No other host was sent anything.
    expect(inFlight(await status(id))).toEqual([]);
  });

  it('start --watch follows the rollout through bake and waves and exits 0 when it succeeds', async () => {
    const names = await fleet('ok', 3);
    const watch = startCli(['rollout', 'start', 'ok', '--canary', '1', '--waves', '100%', '--bake', '1s', '--watch'], env);
    await watch.waitFor(/started rollout (ro-[0-9a-f]+)/);
    const id = /started rollout (ro-[0-9a-f]+)/.exec(watch.output())![1]!;
    for (let wave = 1; wave <= 2; wave++) {
      await watch.waitFor(wave === 1 ? 'canary (wave 1 of 2) started' : 'wave 2 of 2 started');
      const current = await status(id);
      for (const host of inFlight(current)) await agents.get(host.host)!.report('healthy', current);
    }
    const result = await watch.done;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('wave 1 of 2 healthy, baking for 1s');
    expect(result.stdout).toMatch(/\d\d:\d\d:\d\d {2}succeeded\n/);
    expect(result.stdout).toContain(`rollout ${id} · release ok · succeeded`);
    for (const name of names) expect(result.stdout).toContain(`${name}: healthy`);
  });

  it('watch --json prints one JSON object per line and ends with the final status', async () => {
    await fleet('js', 1);
    const id = RolloutStatus.parse(JSON.parse((await shoal(['rollout', 'start', 'js', '--json'], env)).stdout)).id;
    await api('POST', `/v1/rollouts/${id}/abort`);
    const result = await shoal(['rollout', 'watch', id, '--json'], env);
    expect(result.code).toBe(1);
    const messages = result.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string; data: { kind?: string; state?: string } });
    expect(messages.filter((m) => m.event === 'audit').map((m) => m.data.kind)).toEqual(['rollout-started', 'rollout-wave-started', 'rollout-host-issued', 'rollout-aborted']);
    expect(messages.at(-1)).toMatchObject({ event: 'status', data: { state: 'aborted' } });
  });

  it('on a terminal, watch draws the rollout in place with the latest events below it, in colour', async () => {
    await fleet('tty', 2);
    const id = RolloutStatus.parse(JSON.parse((await shoal(['rollout', 'start', 'tty', '--json'], env)).stdout)).id;
    await api('POST', `/v1/rollouts/${id}/abort`);
    let stdout = '';
    const code = await runCli(['rollout', 'watch', id], { env, stdout: (t) => (stdout += t), stderr: () => {}, fetch, isTTY: true });
    expect(code).toBe(1);
    const plain = stdout.replace(/\x1b\[\d+m/g, '');
    expect(stdout).toContain('\x1b[31maborted\x1b[39m');
    expect(plain.startsWith(`rollout ${id} · release tty · aborted\n`)).toBe(true);
    const tail = plain.trimEnd().split('\n\n').at(-1)!.split('\n').map((l) => l.replace(/^\d\d:\d\d:\d\d {2}/, ''));
    expect(tail).toHaveLength(5);
    expect(tail[0]).toBe('started: waves of 2 hosts by operator:test-admin');
    expect(tail.at(-1)).toBe('aborted: aborted by operator:test-admin');
  });

  it('retry starts a new rollout, linked to the old one, for only the hosts it left unfinished', async () => {
    const names = await fleet('retry', 3);
    const old = RolloutStatus.parse(JSON.parse((await shoal(['rollout', 'start', 'retry', '--waves', '1,100%', '--json'], env)).stdout));
    const first = old.waves[0]!.hosts[0]!.host;
    await agents.get(first)!.report('healthy', await status(old.id));
    const active = await shoal(['rollout', 'retry', old.id], env);
    expect(active.code).toBe(1);
    expect(active.stderr).toContain(`rollout ${old.id} is running; retry applies only to a finished rollout`);
    await api('POST', `/v1/rollouts/${old.id}/abort`);

    const retried = await shoal(['rollout', 'retry', old.id, '--json'], env);
    expect(retried.code).toBe(0);
    const again = RolloutStatus.parse(JSON.parse(retried.stdout));
    expect(again.retryOf).toBe(old.id);
    expect(again.waves.flatMap((w) => w.hosts.map((h) => h.host)).sort()).toEqual(names.filter((h) => h !== first).sort());
    const human = await shoal(['rollout', 'status', again.id], env);
    expect(human.stdout).toContain(`retries ${old.id}`);
    const events = await api<{ events: Array<{ kind: string; data: { retryId?: string } }> }>('GET', `/v1/rollouts/${old.id}/events`);
    expect(events.events.filter((e) => e.kind === 'rollout-retried').map((e) => e.data.retryId)).toEqual([again.id]);
    await api('POST', `/v1/rollouts/${again.id}/abort`);
  });

  it('names an unknown rollout', async () => {
    const [shown, watched] = await Promise.all([shoal(['rollout', 'status', 'ro-nope'], env), shoal(['rollout', 'watch', 'ro-nope'], env)]);
    expect(shown).toMatchObject({ code: 1, stderr: 'shoal: no rollout with id "ro-nope" (unknown-rollout, HTTP 404)\n' });
    expect(watched).toMatchObject({ code: 1, stderr: 'shoal: no rollout with id "ro-nope" (unknown-rollout, HTTP 404)\n' });
  });
});
