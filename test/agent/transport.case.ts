import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControllerClient } from '../../agent/src/client.js';
import type { Identity } from '../../agent/src/identity.js';
import { SESSION_TTL_MS } from '../../controller/src/auth/sessions.js';
import { createOperatorToken } from '../../controller/src/auth/operator-tokens.js';
import { registerHost } from '../../controller/src/hosts/enrollment.js';
import { createManifestSigner } from '../../controller/src/manifests/signer.js';
import { startController, type ControllerHandle } from '../../controller/src/server.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import type { Report } from '../../shared/src/protocol.js';
import { newHostKeys, storePath, testKeys } from '../controller/helpers.js';

/**
 * One case suite for the agent's two ways of learning its manifest, the websocket and the
 * (long-)poll, run against the real controller on a loopback socket (Hono's
 * `common.case.test.ts` idea): each transport file calls `transportCases` with its factory.
 */

export interface TransportContext {
  url: string;
  host: string;
  identity: Identity;
  client: ControllerClient;
  /** Every envelope the transport handed over, in order. */
  onEnvelope: (envelope: unknown) => void;
}

export interface TransportUnderTest {
  start(): void;
  stop(): void;
}

export function transportCases(name: string, create: (context: TransportContext) => TransportUnderTest): void {
  describe(`${name} transport against the real controller`, () => {
    let dir: string;
    let handle: ControllerHandle;
    let transport: TransportUnderTest;
    let client: ControllerClient;
    let operatorToken: string;
    let clockOffsetMs = 0;
    const keys = testKeys('single-key');
    const received: string[] = [];
    const host = newHostKeys('web-1');

    const boot = (port: number) =>
      startController({
        dbFile: join(dir, 'controller.sqlite'),
        signer: createManifestSigner(keys.controllerKey),
        releaseTrust: keys.trust,
        port,
        clock: { now: () => Date.now() + clockOffsetMs },
      });

    beforeEach(async () => {
      dir = mkdtempSync(join(tmpdir(), 'shoal-transport-'));
      clockOffsetMs = 0;
      received.length = 0;
      handle = await boot(0);
      operatorToken = createOperatorToken(handle.database.db, handle.deps.clock, 'test-admin').token;
      registerHost(handle.database.db, handle.deps.clock, { name: host.name, publicKey: host.publicKey, tags: [], actor: 'test' });
      const identity = { file: '(test)', publicKey: host.keys.publicKey, secretKey: host.keys.secretKey };
      client = new ControllerClient({ baseUrl: handle.url, host: host.name, identity, ed25519: tweetnaclEd25519 });
      transport = create({ url: handle.url, host: host.name, identity, client, onEnvelope: (envelope) => received.push(JSON.stringify(envelope)) });
    });
    afterEach(async () => {
      transport.stop();
      await handle.close();
      rmSync(dir, { recursive: true, force: true });
    });

    // A connection of its own per call (no keep-alive pool): a pooled socket to the controller before its restart would fail the call.
    const setDesired = async (hashChar: string) => {
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const body = JSON.stringify({ storePath: storePath('sys', hashChar) });
        const request = httpRequest(
          `${handle.url}/v1/hosts/${host.name}/desired`,
          { method: 'PUT', agent: false, headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' } },
          (response) => {
            response.resume();
            response.on('end', () => resolve(response.statusCode));
          },
        );
        request.on('error', reject);
        request.end(body);
      });
      expect(status).toBe(200);
    };
    /** Waits until the transport handed over `count` distinct envelopes. */
    const receivedDistinct = (count: number) => expect.poll(() => new Set(received).size, { timeout: 15_000 }).toBe(count);

    it('connects and receives the desired manifest, then every change', async () => {
      await setDesired('a');
      transport.start();
      await receivedDistinct(1);
      await setDesired('b');
      await receivedDistinct(2);
    });

    it('reconnects after the controller restarts and receives what changed meanwhile', async () => {
      transport.start();
      await setDesired('a');
      await receivedDistinct(1);
      const port = handle.port;
      await handle.close();
      handle = await boot(port);
      await setDesired('b');
      await receivedDistinct(2);
    });

    it('keeps receiving after its session expired at the controller', async () => {
      transport.start();
      await setDesired('a');
      await receivedDistinct(1);
      // The controller's clock passes the session's end: the token the agent holds is worthless now.
      clockOffsetMs += SESSION_TTL_MS + 60_000;
      await setDesired('b');
      await receivedDistinct(2);
      // Reports (HTTP, in both modes) log in again rather than fail.
      const sent = await client.sendReports([report(1)]);
      expect(sent.ok && sent.value.ackedSeqs).toEqual([1]);
    });

    it('gets a clear refusal for an oversized report batch and keeps receiving', async () => {
      transport.start();
      await setDesired('a');
      await receivedDistinct(1);
      const huge = Array.from({ length: 400 }, (_, i) => report(i + 1, 'x'.repeat(4_000)));
      const refused = await client.sendReports(huge);
      expect(refused.ok).toBe(false);
      if (!refused.ok) expect(refused.error).toMatchObject({ kind: 'http', status: 413 });
      await setDesired('b');
      await receivedDistinct(2);
    });
  });
}

function report(seq: number, padding = ''): Report {
  return { seq, at: new Date().toISOString(), phase: 'reconciled', manifestVersion: null, storePath: null, currentSystem: null, detail: padding ? { reason: padding } : {} };
}
