import nacl from 'tweetnacl';
import { expect } from 'vitest';
import { toBase64 } from '../../../shared/src/keys.js';
import { AgentRoutes, PROTOCOL_VERSION, challengeMessage, controllerAudience, type Phase } from '../../../shared/src/protocol.js';
import type { RolloutSpecInput, RolloutStatus } from '../../../shared/src/rollout-api.js';
import { storePath, type TestHost } from '../helpers.js';
import type { LiveController } from '../server-helpers.js';

export const OLD = (host: string) => storePath(`nixos-system-${host}-old`, 'a');
export const NEW = (host: string) => storePath(`nixos-system-${host}-new`, 'b');

/**
 * Hosts that speak to a live controller over the real agent and operator HTTP APIs: each logs in
 * with its key, reports what it runs, and answers manifests with reports.
 */
export class Fleet {
  private readonly sessions = new Map<string, string>();
  private readonly seqs = new Map<string, number>();
  private readonly answered = new Map<string, number>();

  constructor(
    readonly controller: LiveController,
    readonly names: string[],
  ) {}

  static async start(controller: LiveController, names: string[]): Promise<Fleet> {
    const fleet = new Fleet(controller, names);
    for (const name of names) {
      const host = await controller.register(name);
      fleet.sessions.set(name, await fleet.login(host));
      await fleet.report(name, 'reconciled', null, OLD(name));
    }
    return fleet;
  }

  async operator(method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(`${this.controller.handle.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.controller.operatorToken}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  async startRollout(spec: Omit<RolloutSpecInput, 'release'>): Promise<string> {
    const release = await this.operator('POST', '/v1/releases', { name: 'rel-1', hosts: this.names.map((host) => ({ host, storePath: NEW(host) })) });
    expect(release.status).toBe(201);
    const started = await this.operator('POST', '/v1/rollouts', { release: 'rel-1', ...spec });
    expect(started.status).toBe(201);
    return ((await started.json()) as RolloutStatus).id;
  }

  async report(host: string, phase: Phase, version: number | null, current: string): Promise<void> {
    const seq = (this.seqs.get(host) ?? 0) + 1;
    this.seqs.set(host, seq);
    const response = await fetch(`${this.controller.handle.url}${AgentRoutes.reports}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.sessions.get(host)}` },
      body: JSON.stringify({
        protocol: PROTOCOL_VERSION,
        reports: [{ seq, at: new Date().toISOString(), phase, manifestVersion: version, storePath: version === null ? null : NEW(host), currentSystem: current, detail: phase === 'rolled-back' ? { reason: 'health check web failed' } : {} }],
      }),
    });
    expect(response.status).toBe(200);
  }

  /** Every host holding a manifest it has not answered yet accepts it and ends in `phase`; returns those hosts. */
  async answer(phase: (host: string) => Phase): Promise<string[]> {
    const answered: string[] = [];
    for (const host of this.names) {
      const response = await fetch(`${this.controller.handle.url}${AgentRoutes.manifest}`, { headers: { authorization: `Bearer ${this.sessions.get(host)}` } });
      if (response.status !== 200) continue;
      const { version } = (await response.json()) as { version: number };
      if (this.answered.get(host) === version) continue;
      this.answered.set(host, version);
      answered.push(host);
      const outcome = phase(host);
      await this.report(host, 'accepted', version, OLD(host));
      await this.report(host, outcome, version, outcome === 'healthy' ? NEW(host) : OLD(host));
    }
    return answered;
  }

  private async login(host: TestHost): Promise<string> {
    const post = (path: string, body: unknown) =>
      fetch(`${this.controller.handle.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const { nonce } = (await (await post(AgentRoutes.challenge, { protocol: PROTOCOL_VERSION, host: host.name })).json()) as { nonce: string };
    const signature = toBase64(nacl.sign.detached(challengeMessage(host.name, nonce, controllerAudience(this.controller.handle.url)), host.keys.secretKey));
    const session = await post(AgentRoutes.session, { protocol: PROTOCOL_VERSION, host: host.name, nonce, signature });
    expect(session.status).toBe(200);
    return ((await session.json()) as { token: string }).token;
  }
}
