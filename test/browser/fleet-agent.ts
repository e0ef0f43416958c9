import { PROTOCOL_VERSION, controllerAudience, type CommandFailure, type Report } from '../../shared/src/protocol.js';
import { signChallenge, type TestHost } from '../controller/helpers.js';

/**
 * Speaks the agent's HTTP protocol for one host (challenge, signed session, reports), so a browser
 * test can give a registered host a history without running an agent process.
 */
export class ReportingHost {
  private seq = 0;
  private token = '';

  constructor(
    private readonly url: string,
    readonly host: TestHost,
  ) {}

  private async post(path: string, body: unknown, token?: string): Promise<unknown> {
    const response = await fetch(`${this.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
    return response.json();
  }

  async signIn(): Promise<void> {
    const { nonce } = (await this.post('/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: this.host.name })) as { nonce: string };
    const signature = signChallenge(this.host, nonce, controllerAudience(this.url));
    this.token = ((await this.post('/v1/agent/session', { protocol: PROTOCOL_VERSION, host: this.host.name, nonce, signature })) as { token: string }).token;
  }

  /** Reports `phases` about manifest `version` (the desired `storePath`) while running `currentSystem`. */
  async report(version: number, storePath: string, currentSystem: string, phases: Array<Report['phase']>, failure?: CommandFailure): Promise<void> {
    const reports: Report[] = phases.map((phase) => ({
      seq: ++this.seq,
      at: new Date().toISOString(),
      phase,
      manifestVersion: version,
      storePath,
      currentSystem,
      detail: phase === 'failed' && failure ? { reason: 'switch-to-configuration failed', failure } : {},
    }));
    await this.post('/v1/agent/reports', { protocol: PROTOCOL_VERSION, reports }, this.token);
  }
}
