import { describe, expect, it } from 'vitest';
import { RolloutSpec, type RolloutSpecInput } from '../../../shared/src/rollout-api.js';
import { planRollout, type PlannedRelease } from '../../../controller/src/rollouts/plan.js';

const path = (n: number) => `/nix/store/${'0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 31)}${'abcdfghij'[n % 9]}-nixos-system-h${n}`;

function release(count: number, name = 'r1'): PlannedRelease {
  return {
    name,
    hosts: Array.from({ length: count }, (_, i) => ({ host: `h${i + 1}`, storePath: path(i) })),
  };
}

const plan = (input: Omit<RolloutSpecInput, 'release'>, rel = release(8), tags = new Map<string, string[]>()) =>
  planRollout(RolloutSpec.parse({ release: rel.name, ...input }), rel, tags);

describe('rollout planning', () => {
  it('puts one canary first, then cumulative percentage waves covering every host once', () => {
    const outcome = plan({ canary: 1, waves: ['25%', '100%'] });
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    const sizes = outcome.plan.waves.map((w) => w.hosts.length);
    expect(sizes).toEqual([1, 1, 6]);
    expect(outcome.plan.waves[0]!.canary).toBe(true);
    const all = outcome.plan.waves.flatMap((w) => w.hosts);
    expect(new Set(all).size).toBe(8);
  });

  it('gives the same plan for the same release every time, and another order for another release', () => {
    const first = plan({ canary: 1, waves: ['100%'] });
    const again = plan({ canary: 1, waves: ['100%'] });
    expect(again).toEqual(first);
    const orders = new Set(
      ['a', 'b', 'c', 'd', 'e'].map((name) => {
        const outcome = plan({ waves: ['100%'] }, release(8, name));
        return outcome.ok ? outcome.plan.waves[0]!.hosts.join() : '';
      }),
    );
    expect(orders.size).toBeGreaterThan(1);
  });

  it('places explicitly named hosts and tagged hosts in their own waves', () => {
    const tags = new Map([
      ['h3', ['db']],
      ['h4', ['db']],
    ]);
    const outcome = plan({ waves: [{ hosts: ['h7'] }, { tags: ['db'] }, '100%'] }, release(8), tags);
    expect(outcome.ok && outcome.plan.waves.map((w) => w.hosts.slice().sort())).toEqual([
      ['h7'],
      ['h3', 'h4'],
      expect.arrayContaining(['h1', 'h2', 'h5', 'h6', 'h8']),
    ]);
  });

  it('marks the waves that wait for approval', () => {
    const outcome = plan({ canary: 1, waves: ['50%', '100%'], approvalBefore: [1] });
    expect(outcome.ok && outcome.plan.waves.map((w) => w.needsApproval)).toEqual([false, true, false]);
  });

  it('refuses waves that leave hosts out, shrink, or name hosts outside the selection', () => {
    expect(plan({ waves: ['50%'] })).toMatchObject({ ok: false, problems: [expect.stringMatching(/cover 4 of 8 .* end with "100%"/)] });
    expect(plan({ waves: ['50%', '25%', '100%'] })).toMatchObject({
      ok: false,
      problems: [expect.stringContaining('fewer hosts (2) than the waves before it (4)')],
    });
    expect(plan({ waves: [{ hosts: ['h99'] }, '100%'] })).toMatchObject({
      ok: false,
      problems: [expect.stringContaining('"h99", which is not selected')],
    });
    expect(plan({ canary: 8, waves: ['100%'] })).toMatchObject({ ok: false, problems: [expect.stringContaining('canary of 8')] });
    expect(plan({ waves: ['100%'], approvalBefore: [3] })).toMatchObject({ ok: false, problems: [expect.stringContaining('position 3 (wave 4)')] });
  });

  it('refuses a selector naming a host that is not in the release', () => {
    expect(plan({ selector: { hosts: ['h1', 'zz'] }, waves: ['100%'] })).toMatchObject({
      ok: false,
      problems: [expect.stringContaining('"zz", which is not in release "r1"')],
    });
  });
});

describe('rollout spec validation', () => {
  it.each([
    [{ waves: [] }, 'at least one wave'],
    [{ waves: ['140%'] }, 'at most 100%'],
    [{ waves: ['100%'], bakeSeconds: -5 }, 'bake time cannot be negative'],
    [{ waves: ['0%'] }, 'above 0%'],
  ])('refuses %j with a message naming the problem', (input, message) => {
    const result = RolloutSpec.safeParse({ release: 'r1', ...input });
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).toContain(message);
  });
});
