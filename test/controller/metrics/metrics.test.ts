import { afterEach, describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { toBase64 } from '../../../shared/src/keys.js';
import { AgentRoutes, PROTOCOL_VERSION, challengeMessage, controllerAudience, type Phase, type Report } from '../../../shared/src/protocol.js';
import { AgentSocket, liveController, type LiveController } from '../server-helpers.js';
import { storePath, type TestHost } from '../helpers.js';
import { parseExposition, sampleValue, type Family } from './exposition.js';

const controllers: LiveController[] = [];
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.close();
});

async function start(options: Parameters<typeof liveController>[0] = {}): Promise<LiveController> {
  const controller = await liveController(options);
  controllers.push(controller);
  return controller;
}

async function scrape(controller: LiveController, headers: Record<string, string> = {}): Promise<Map<string, Family>> {
  const response = await fetch(`${controller.handle.url}/metrics`, { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

/** Logs in over the real agent API, as the agent does. */
async function session(controller: LiveController, host: TestHost): Promise<string> {
  const post = (path: string, body: unknown) =>
    fetch(`${controller.handle.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const { nonce } = (await (await post(AgentRoutes.challenge, { protocol: PROTOCOL_VERSION, host: host.name })).json()) as { nonce: string };
  const signature = toBase64(nacl.sign.detached(challengeMessage(host.name, nonce, controllerAudience(controller.handle.url)), host.keys.secretKey));
  const answer = await post(AgentRoutes.session, { protocol: PROTOCOL_VERSION, host: host.name, nonce, signature });
  expect(answer.status).toBe(200);
  return ((await answer.json()) as { token: string }).token;
}

async function report(controller: LiveController, token: string, reports: Report[]): Promise<void> {
  const response = await fetch(`${controller.handle.url}${AgentRoutes.reports}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ protocol: PROTOCOL_VERSION, reports }),
  });
  expect(response.status).toBe(200);
}

const T0 = Date.parse('2030-01-01T00:00:00Z');
function at(seq: number, phase: Phase, seconds: number, version: number, path: string): Report {
  return { seq, at: new Date(T0 + seconds * 1000).toISOString(), phase, manifestVersion: version, storePath: path, currentSystem: path, detail: {} };
}

describe('/metrics', () => {
  it('is valid Prometheus exposition format with HELP and TYPE for every family', async () => {
    const controller = await start({ processMetrics: true });
    const families = await scrape(controller);
    for (const name of [
      'shoal_hosts',
      'shoal_hosts_by_connection',
      'shoal_connected_agents',
      'shoal_rollouts',
      'shoal_manifests_issued_total',
      'shoal_reports_received_total',
      'shoal_rollout_halts_total',
      'shoal_rollout_engine_ticks_total',
      'shoal_websocket_connects_total',
      'shoal_websocket_disconnects_total',
      'shoal_deployment_duration_seconds',
      'shoal_phase_duration_seconds',
      'shoal_webhook_deliveries_pending',
      'process_cpu_seconds_total',
    ]) {
      expect(families.get(name), name).toBeDefined();
      expect(families.get(name)!.help.length, `${name} HELP`).toBeGreaterThan(0);
    }
    expect(families.get('shoal_deployment_duration_seconds')!.type).toBe('histogram');
    expect(families.get('shoal_manifests_issued_total')!.type).toBe('counter');
    expect(sampleValue(families, 'shoal_rollouts', { state: 'running' })).toBe(0);
  });

  it('counts the rollout engine\'s passes as its timer completes them, the one at start included', async () => {
    const controller = await start({ rolloutTickMs: 20 });
    const families = await scrape(controller);
    expect(families.get('shoal_rollout_engine_ticks_total')!.type).toBe('counter');
    const first = sampleValue(families, 'shoal_rollout_engine_ticks_total')!;
    expect(first).toBeGreaterThanOrEqual(1);
    await expect.poll(async () => sampleValue(await scrape(controller), 'shoal_rollout_engine_ticks_total'), { timeout: 10_000 }).toBeGreaterThanOrEqual(first + 2);
  });

  it('the checker itself rejects what the grammar does not allow', () => {
    expect(() => parseExposition('shoal_x 1\n')).toThrow(/no TYPE/);
    expect(() => parseExposition('# HELP a b\n# TYPE a gauge\na{l="x} 1\n')).toThrow(/not a valid sample/);
    expect(() => parseExposition('# TYPE a gauge\na 1\n')).toThrow(/without a HELP/);
    expect(() => parseExposition('# HELP a b\n# TYPE a gauge\na one\n')).toThrow(/not a valid sample/);
    // prom-client's own spelling of NaN, which the format does not allow (the controller corrects it).
    expect(() => parseExposition('# HELP a b\n# TYPE a gauge\na Nan\n')).toThrow(/not a valid sample/);
    expect(parseExposition('# HELP a b\n# TYPE a gauge\na NaN\n').get('a')!.samples[0]!.value).toBeNaN();
    expect(() =>
      parseExposition('# HELP h b\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'),
    ).toThrow(/cumulative/);
  });

  it('counts manifests by cause, reports by phase, and times the deployment and its phases from the reports', async () => {
    const controller = await start();
    const host = await controller.register('web-1');
    const token = await session(controller, host);
    const before = await scrape(controller);
    expect(sampleValue(before, 'shoal_manifests_issued_total', { cause: 'desired-set' })).toBe(0);
    expect(sampleValue(before, 'shoal_hosts', { phase: 'none' })).toBe(1);

    const target = storePath('nixos-system-web-1', 'b');
    expect((await controller.setDesired('web-1', target)).status).toBe(200);
    // The agent's poll: the host now counts as connected by polling.
    const manifest = await fetch(`${controller.handle.url}${AgentRoutes.manifest}`, { headers: { authorization: `Bearer ${token}` } });
    expect(manifest.status).toBe(200);
    await report(controller, token, [at(1, 'accepted', 0, 1, target), at(2, 'realising', 1, 1, target), at(3, 'activating', 31, 1, target)]);
    await report(controller, token, [at(4, 'checking', 33, 1, target), at(5, 'healthy', 40, 1, target)]);
    // A resent batch is acknowledged but not counted again.
    await report(controller, token, [at(5, 'healthy', 40, 1, target)]);

    const after = await scrape(controller);
    expect(sampleValue(after, 'shoal_manifests_issued_total', { cause: 'desired-set' })).toBe(1);
    expect(sampleValue(after, 'shoal_manifests_issued_total', { cause: 'rollout' })).toBe(0);
    for (const phase of ['accepted', 'realising', 'activating', 'checking', 'healthy']) {
      expect(sampleValue(after, 'shoal_reports_received_total', { phase }), phase).toBe(1);
    }
    expect(sampleValue(after, 'shoal_hosts', { phase: 'healthy' })).toBe(1);
    expect(sampleValue(after, 'shoal_hosts', { phase: 'none' })).toBe(0);
    expect(sampleValue(after, 'shoal_hosts_by_connection', { mode: 'polling' })).toBe(1);
    expect(sampleValue(after, 'shoal_deployment_duration_seconds_count', { result: 'success' })).toBe(1);
    expect(sampleValue(after, 'shoal_deployment_duration_seconds_sum', { result: 'success' })).toBe(40);
    expect(sampleValue(after, 'shoal_deployment_duration_seconds_bucket', { result: 'success', le: '30' })).toBe(0);
    expect(sampleValue(after, 'shoal_deployment_duration_seconds_bucket', { result: 'success', le: '60' })).toBe(1);
    expect(sampleValue(after, 'shoal_phase_duration_seconds_sum', { phase: 'realising' })).toBe(30);
    expect(sampleValue(after, 'shoal_phase_duration_seconds_sum', { phase: 'checking' })).toBe(7);
  });

  it('counts websocket connects and disconnects and shows connected agents', async () => {
    const controller = await start();
    const host = await controller.register('web-1');
    const socket = new AgentSocket(controller.handle.url);
    await socket.authenticate(host);
    await socket.expect('welcome');
    const connected = await scrape(controller);
    expect(sampleValue(connected, 'shoal_connected_agents')).toBe(1);
    expect(sampleValue(connected, 'shoal_hosts_by_connection', { mode: 'websocket' })).toBe(1);
    // Counted from the connected event, which the hub writes after it welcomed the agent.
    await expect.poll(async () => sampleValue(await scrape(controller), 'shoal_websocket_connects_total')).toBe(1);

    socket.close();
    await socket.closed;
    await expect.poll(async () => sampleValue(await scrape(controller), 'shoal_websocket_disconnects_total')).toBe(1);
    const after = await scrape(controller);
    expect(sampleValue(after, 'shoal_connected_agents')).toBe(0);
    expect(sampleValue(after, 'shoal_hosts_by_connection', { mode: 'websocket' })).toBe(0);
  });

  it('keeps the counters of two controllers in one process apart', async () => {
    const a = await start();
    const b = await start();
    await a.register('web-1');
    expect((await a.setDesired('web-1', storePath())).status).toBe(200);
    expect(sampleValue(await scrape(a), 'shoal_manifests_issued_total', { cause: 'desired-set' })).toBe(1);
    expect(sampleValue(await scrape(b), 'shoal_manifests_issued_total', { cause: 'desired-set' })).toBe(0);
  });

  it('requires the bearer token when one is configured', async () => {
    const controller = await start({ metricsToken: 'metrics-secret-1' });
    const missing = await fetch(`${controller.handle.url}/metrics`);
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('missing-token');
    const wrong = await fetch(`${controller.handle.url}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('invalid-token');
    // An operator token is not a metrics token.
    expect((await fetch(`${controller.handle.url}/metrics`, { headers: { authorization: `Bearer ${controller.operatorToken}` } })).status).toBe(401);
    await scrape(controller, { authorization: 'Bearer metrics-secret-1' });
  });
});
