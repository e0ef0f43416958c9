import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ControllerClient } from '../../agent/src/client.js';
import type { Identity } from '../../agent/src/identity.js';
import { SESSION_TTL_MS } from '../../controller/src/auth/sessions.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import type { Report } from '../../shared/src/protocol.js';
import { newHostKeys, storePath } from '../controller/helpers.js';
import { useControllers, type AgentTestController } from './real-controller.js';

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
    const startController = useControllers();
    let controller: AgentTestController;
    let transport: TransportUnderTest;
    let client: ControllerClient;
    const received: string[] = [];
    const host = newHostKeys('web-1');

    beforeEach(async () => {
      received.length = 0;
      controller = await startController();
      await controller.register(host.name, host.publicKey);
      const identity = { file: '(test)', publicKey: host.keys.publicKey, secretKey: host.keys.secretKey };
      client = new ControllerClient({ baseUrl: controller.url, host: host.name, identity, ed25519: tweetnaclEd25519 });
      transport = create({ url: controller.url, host: host.name, identity, client, onEnvelope: (envelope) => received.push(JSON.stringify(envelope)) });
    });
    // Registered after useControllers: the transport stops before its controller does.
    afterEach(() => transport.stop());

    const setDesired = (hashChar: string) => controller.setDesired(host.name, storePath('sys', hashChar));
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
      await controller.restart();
      await setDesired('b');
      await receivedDistinct(2);
    });

    it('keeps receiving after its session expired at the controller', async () => {
      transport.start();
      await setDesired('a');
      await receivedDistinct(1);
      // The controller's clock passes the session's end: the token the agent holds is worthless now.
      controller.clockOffsetMs += SESSION_TTL_MS + 60_000;
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
