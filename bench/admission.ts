import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { AgentRoutes, PROTOCOL_VERSION } from '../shared/src/protocol.js';
import { DEFAULT_ADMISSION } from '../controller/src/auth/admission.js';
import { Fleet } from './fleet/fleet.js';
import type { StormResult } from './fleet/protocol.js';
import type { Cleanup } from './lib/cleanup.js';
import { startControllerProcess } from './lib/controller.js';
import { Operator } from './lib/operator.js';
import { procStats } from './lib/proc.js';
import type { Figures } from './lib/results.js';
import { round } from './lib/stats.js';

export interface AdmissionBenchOptions {
  count: number;
  workers: number;
  cleanup: Cleanup;
  log: (line: string) => void;
}

/** Opens `n` websockets from `source` and never answers a challenge; resolves with how many got one and how many were refused. */
async function holdSockets(url: string, source: string, n: number): Promise<{ held: number; refused: number; sockets: WebSocket[] }> {
  const sockets: WebSocket[] = [];
  const answers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<'held' | 'refused'>((resolve) => {
          const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${AgentRoutes.websocket}`, { localAddress: source, perMessageDeflate: false });
          sockets.push(ws);
          ws.on('error', () => resolve('refused'));
          ws.once('message', () => resolve('held'));
          ws.once('close', () => resolve('refused'));
        }),
    ),
  );
  return { held: answers.filter((a) => a === 'held').length, refused: answers.filter((a) => a === 'refused').length, sockets };
}

/** Asks for `n` challenges from `source` without answering any; counts the statuses. */
async function floodChallenges(url: string, source: string, host: string, n: number): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  const one = () =>
    new Promise<number>((resolve) => {
      const req = request(`${url}${AgentRoutes.challenge}`, { method: 'POST', localAddress: source, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end(JSON.stringify({ protocol: PROTOCOL_VERSION, host }));
    });
  for (let i = 0; i < n; i += 100) {
    for (const status of await Promise.all(Array.from({ length: Math.min(100, n - i) }, one))) statuses[status] = (statuses[status] ?? 0) + 1;
  }
  return statuses;
}

/**
 * Admission caps under a reconnect storm and an attacker. N simulated agents, each from a loopback
 * address of its own (127.1.x.y), enroll and connect; then all drop and reconnect at the same
 * instant (retrying a 4429 with the agent's backoff). Measured against a controller with the caps
 * effectively off and one with the default caps; with the default caps, again while an attacker on
 * 127.0.0.2 holds as many unanswered websockets as it can and another on 127.0.0.3 asks for
 * challenges it never answers.
 */
export async function runAdmission({ count, workers, cleanup, log }: AdmissionBenchOptions): Promise<Figures> {
  const figures: Figures = {};
  const p = `admission.${count}`;
  const off = { pendingChallenges: 1e9, pendingChallengesPerAddress: 1e9, unauthenticatedConnections: 1e9, unauthenticatedConnectionsPerAddress: 1e9 };
  for (const caps of ['off', 'default'] as const) {
    const dir = cleanup.dir(mkdtempSync(join(tmpdir(), `shoal-bench-admission-${caps}-`)));
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(caps === 'off' ? { admission: off } : {}));
    const controller = await startControllerProcess(join(dir, 'c'), cleanup, { args: ['--config', configFile] });
    const op = new Operator(controller.url, controller.adminToken);
    const fleet = await Fleet.start({
      urls: [controller.url],
      count,
      workers,
      spreadSources: true,
      trust: { releaseKey: controller.releasePublicKey, controllerKey: controller.controllerPublicKey },
      cleanup,
    });
    try {
      await fleet.all({ cmd: 'enroll', token: await op.enrollmentToken(count), concurrency: 16 });
      const failed = (await fleet.all<number>({ cmd: 'connect', concurrency: 200 })).reduce((a, b) => a + b, 0);
      if (failed > 0) throw new Error(`${failed} of ${count} simulated agents could not connect:\n${controller.tail()}`);
      const storm = async (label: string) => {
        await fleet.all({ cmd: 'disconnect' });
        const before = procStats(controller.pid);
        const results = await fleet.all<StormResult>({ cmd: 'storm' });
        const after = procStats(controller.pid);
        const lost = results.reduce((a, r) => a + r.failed, 0);
        if (lost > 0) throw new Error(`${lost} agents did not reconnect in the ${label} storm:\n${controller.tail()}`);
        figures[`${p}.${label}_s`] = round(Math.max(...results.map((r) => r.elapsedMs)) / 1000, 2);
        figures[`${p}.${label}_refused`] = results.reduce((a, r) => a + r.refused, 0);
        figures[`${p}.${label}_errors`] = results.reduce((a, r) => a + r.errors, 0);
        figures[`${p}.${label}_cpu_s`] = round(after.cpuSeconds - before.cpuSeconds, 2);
        log(`  ${count}: ${label}: all reconnected in ${figures[`${p}.${label}_s`]} s, ${figures[`${p}.${label}_refused`]} refusals (4429), ${figures[`${p}.${label}_errors`]} other failures retried`);
      };
      await storm(`storm_caps_${caps}`);
      if (caps === 'default') {
        // Challenges stay pending 60 s, unanswered sockets 10 s (the auth deadline): the storm starts right after.
        const challenges = await floodChallenges(controller.url, '127.0.0.3', fleet.names[0]!, 5000);
        const attack = await holdSockets(controller.url, '127.0.0.2', 2000);
        figures[`${p}.attacker_sockets_held`] = attack.held;
        figures[`${p}.attacker_sockets_refused`] = attack.refused;
        figures[`${p}.attacker_challenges_pending`] = challenges[200] ?? 0;
        figures[`${p}.attacker_challenges_refused_429`] = challenges[429] ?? 0;
        log(`  ${count}: attacker holds ${attack.held} sockets (${attack.refused} refused), ${challenges[200] ?? 0} challenges (${challenges[429] ?? 0} refused)`);
        await storm('storm_under_attack');
        for (const ws of attack.sockets) ws.terminate();
        figures[`${p}.default_caps_per_address`] = DEFAULT_ADMISSION.unauthenticatedSockets.perAddress;
      }
    } finally {
      await fleet.close();
      await controller.stop();
    }
  }
  return figures;
}
