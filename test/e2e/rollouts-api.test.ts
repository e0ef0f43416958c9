import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RolloutSpecInput } from '../../shared/src/rollout-api.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { generateNamedKey } from '../../shared/src/keys.js';

interface ErrorJson {
  error: { code: string; message: string; issues?: string[] };
}

/**
 * Issue 4, test 8: what the real controller refuses, and how it says so. No agents are needed:
 * registered hosts are enough for releases and rollouts that never get past a gate.
 */
describe('rollout API refusals on the real controller', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  const names = ['api-1', 'api-2', 'api-3', 'api-4'];

  const post = async (path: string, body: unknown) => {
    const response = await controller.client.request('POST', path, body);
    return { status: response.status, body: response.body as ErrorJson };
  };

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    controller = await lab.startController();
    for (const name of names) {
      const key = generateNamedKey(name);
      await controller.client.registerHost({ name, publicKey: Buffer.from(key.publicKey).toString('base64') });
    }
    await controller.client.createRelease({ name: 'api-v2', hosts: Object.fromEntries(names.map((h) => [h, fixtures.systems.v2.path])) });
  });
  afterAll(() => lab?.cleanup());

  it('refuses a release with unknown and duplicate hosts, naming each, and stores nothing', async () => {
    const response = await post('/v1/releases', {
      name: 'api-bad',
      hosts: [
        { host: 'api-1', storePath: fixtures.systems.v2.path },
        { host: 'api-1', storePath: fixtures.systems.v3.path },
        { host: 'nosuch-7', storePath: fixtures.systems.v2.path },
        { host: 'nosuch-8', storePath: fixtures.systems.v2.path },
      ],
    });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid-release');
    expect(response.body.error.message).toContain('"nosuch-7" is not known');
    expect(response.body.error.message).toContain('"nosuch-8" is not known');
    expect(response.body.error.issues).toEqual([
      'host "api-1" appears more than once',
      'host "nosuch-7" is not known to this controller',
      'host "nosuch-8" is not known to this controller',
    ]);
    expect((await controller.client.request('GET', '/v1/releases/api-bad')).status).toBe(404);
  });

  it('refuses a release whose store path is not a store path, naming the field', async () => {
    const response = await post('/v1/releases', { name: 'api-badpath', hosts: [{ host: 'api-1', storePath: '/tmp/not-a-store-path' }] });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe('invalid-request');
    expect(response.body.error.message).toContain('hosts.0.storePath');
  });

  const badSpecs: Array<[string, Record<string, unknown>, RegExp]> = [
    ['no waves', { waves: [] }, /waves: a rollout needs at least one wave/],
    ['a wave of 140 %', { waves: ['140%'] }, /waves\.0: a wave percentage must be above 0% and at most 100%/],
    ['a wave of 0 %', { waves: ['0%', '100%'] }, /waves\.0: a wave percentage must be above 0% and at most 100%/],
    ['a negative bake time', { waves: ['100%'], bakeSeconds: -5 }, /bakeSeconds: bake time cannot be negative/],
    ['a wave of 0 hosts', { waves: [0, '100%'] }, /waves\.0: a wave count must be at least 1/],
    ['an unknown field', { waves: ['100%'], bake: 5 }, /bake/],
  ];
  it.each(badSpecs)('refuses a rollout spec with %s (400, naming the field) and starts nothing', async (_what, fields, message) => {
    for (const path of ['/v1/rollouts/plan', '/v1/rollouts']) {
      const response = await post(path, { release: 'api-v2', ...fields });
      expect(response.status).toBe(400);
      expect(response.body.error.code).toBe('invalid-request');
      expect(response.body.error.message).toMatch(message);
    }
    expect((await controller.client.request('GET', '/v1/rollouts')).body).toEqual({ rollouts: [] });
  });

  it('refuses plans the release cannot fill: an unknown release, shrinking waves, waves that miss hosts, a wave naming a stranger', async () => {
    const cases: Array<[Partial<RolloutSpecInput>, number, RegExp]> = [
      [{ release: 'api-nope', waves: ['100%'] }, 404, /no release named "api-nope"/],
      [{ waves: ['75%', '50%', '100%'] }, 400, /wave 2 \(50%\) would cover fewer hosts \(2\) than the waves before it \(3\)/],
      [{ waves: ['50%'] }, 400, /the waves cover 2 of 4 selected hosts; 2 .* are in no wave/],
      [{ waves: [{ hosts: ['api-1', 'ghost-1'] }, '100%'] }, 400, /names host "ghost-1", which is not selected/],
      [{ canary: 4, waves: ['100%'] }, 400, /a canary of 4 leaves none of the 4 selected hosts/],
      [{ waves: ['100%'], approvalBefore: [3] }, 400, /approvalBefore names position 3 \(wave 4\), but the rollout has 1 wave \(positions 0 to 0\)/],
    ];
    for (const [spec, status, message] of cases) {
      const response = await post('/v1/rollouts', { release: 'api-v2', ...spec });
      expect([JSON.stringify(spec), response.status]).toEqual([JSON.stringify(spec), status]);
      expect(response.body.error.message).toMatch(message);
    }
    expect((await controller.client.request('GET', '/v1/rollouts')).body).toEqual({ rollouts: [] });
  });

  it('refuses a rollout that overlaps an active one (409 naming it), and accepts it once the other ended', async () => {
    // A gate before the first wave keeps the first rollout active without any agent.
    const first = await controller.client.startRollout({ release: 'api-v2', waves: [{ hosts: ['api-2', 'api-3'] }, '100%'], approvalBefore: [0] });
    expect(first.state).toBe('waiting-approval');
    await controller.client.createRelease({ name: 'api-v3', hosts: { 'api-3': fixtures.systems.v3.path, 'api-4': fixtures.systems.v3.path } });

    const overlap = await post('/v1/rollouts', { release: 'api-v3', waves: ['100%'] });
    expect(overlap.status).toBe(409);
    expect(overlap.body.error.code).toBe('rollout-overlap');
    expect(overlap.body.error.message).toMatch(new RegExp(`rollout ${first.id} is still active on 2 of these hosts \\((api-3, api-4|api-4, api-3)\\)`));
    expect(overlap.body.error.message).toContain('abort it first');
    await controller.client.act(first.id, 'abort');
    const second = await controller.client.startRollout({ release: 'api-v3', waves: ['100%'], approvalBefore: [0] });
    expect(second.state).toBe('waiting-approval');
    await controller.client.act(second.id, 'abort');
  });

  it('answers 404 for an unknown rollout and an unknown action, and 409 for an action in the wrong state', async () => {
    expect((await post('/v1/rollouts/ro-nope/pause', {})).status).toBe(404);
    expect((await controller.client.request('GET', '/v1/rollouts/ro-nope/events')).status).toBe(404);
    const gated = await controller.client.startRollout({ release: 'api-v2', waves: ['100%'], approvalBefore: [0] });
    const unknown = await post(`/v1/rollouts/${gated.id}/explode`, {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('unknown rollout action "explode"');
    const resume = await post(`/v1/rollouts/${gated.id}/resume`, {});
    expect(resume.status).toBe(409);
    expect(resume.body.error.message).toBe(`rollout ${gated.id} is waiting-approval; resume applies only to a rollout that is paused`);
    await controller.client.act(gated.id, 'abort');
  });
});
