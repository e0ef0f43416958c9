import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import { toBase64 } from '../../../shared/src/keys.js';
import { PROTOCOL_VERSION, challengeMessage, controllerAudience, type CommandFailure, type Phase } from '../../../shared/src/protocol.js';
import { RolloutStatus } from '../../../shared/src/rollout-api.js';
import { newHostKeys, type TestHost } from '../helpers.js';

// The CLI prints local time with its zone; tests that run it in-process see the same zone everywhere.
process.env.TZ = 'UTC';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running `shoal` process: its output so far, and its end. */
export interface CliProcess {
  output(): string;
  /** Resolves once stdout contains `text`. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<CliResult>;
}

/** The CLI as operators run it: a real node process with tsx, no terminal. */
export function startCli(args: string[], env: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'controller/src/cli/main.ts', ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    listeners.forEach((l) => l());
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return {
    output: () => stdout,
    done,
    waitFor(text, timeoutMs = 10_000) {
      const seen = () => (typeof text === 'string' ? stdout.includes(text) : text.test(stdout));
      if (seen()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${String(text)} in the output within ${timeoutMs} ms:\n${stdout}\n${stderr}`)), timeoutMs);
        const check = () => {
          if (!seen()) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve();
        };
        listeners.add(check);
        void done.then(() => {
          if (!seen()) {
            clearTimeout(timer);
            reject(new Error(`shoal exited without printing ${String(text)}:\n${stdout}\n${stderr}`));
          }
        });
      });
    },
  };
}

export function shoal(args: string[], env: Record<string, string>): Promise<CliResult> {
  return startCli(args, env).done;
}

/** The operator API, for what the tests set up rather than test. */
export function operatorApi(url: string, token: string) {
  return async <T = unknown>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await response.json()) as T;
    if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
    return json;
  };
}

/**
 * A stand-in for an agent: registered through the operator API, authenticated with its own key
 * like the real agent, and reporting whatever phase a test needs for the manifest it was sent.
 */
export class FakeAgent {
  private seq = 0;
  private session: string | null = null;
  readonly host: TestHost;

  constructor(
    private readonly url: string,
    name: string,
  ) {
    this.host = newHostKeys(name);
  }

  static async register(url: string, token: string, name: string, tags: string[] = []): Promise<FakeAgent> {
    const agent = new FakeAgent(url, name);
    await operatorApi(url, token)('POST', '/v1/hosts', { name, publicKey: agent.host.publicKey, tags });
    return agent;
  }

  private async post(path: string, body: unknown, token?: string): Promise<Record<string, unknown>> {
    const response = await fetch(`${this.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    const json = (await response.json()) as Record<string, unknown>;
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  /** The version this stand-in says it runs when it logs in (as the real agent does since 0.1.0). */
  agentVersion: string | undefined = undefined;

  private async login(): Promise<string> {
    const name = this.host.name;
    const { nonce } = (await this.post('/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: name })) as { nonce: string };
    const signature = toBase64(nacl.sign.detached(challengeMessage(name, nonce, controllerAudience(this.url)), this.host.keys.secretKey));
    const { token } = (await this.post('/v1/agent/session', { protocol: PROTOCOL_VERSION, host: name, nonce, signature, ...(this.agentVersion ? { agentVersion: this.agentVersion } : {}) })) as { token: string };
    return token;
  }

  /** Reports `phase` for the manifest `rollout` sent this host. */
  async report(phase: Phase, rollout: RolloutStatus, options: { reason?: string; current?: string | null; failure?: CommandFailure } = {}): Promise<void> {
    const member = rollout.waves.flatMap((w) => w.hosts).find((h) => h.host === this.host.name);
    if (!member?.manifestVersion) throw new Error(`${this.host.name} has no manifest in rollout ${rollout.id}`);
    this.session ??= await this.login();
    this.seq += 1;
    await this.post(
      '/v1/agent/reports',
      {
        protocol: PROTOCOL_VERSION,
        reports: [
          {
            seq: this.seq,
            at: new Date().toISOString(),
            phase,
            manifestVersion: member.manifestVersion,
            storePath: member.targetPath,
            currentSystem: options.current === undefined ? (phase === 'healthy' ? member.targetPath : null) : options.current,
            detail: { ...(options.reason ? { reason: options.reason } : {}), ...(options.failure ? { failure: options.failure } : {}) },
          },
        ],
      },
      this.session,
    );
  }
}
