import { beforeEach, afterEach, describe, expect, it } from 'vitest';
import { loadOrCreateIdentity, type Identity } from '../../agent/src/identity.js';
import { WsTransport, websocketUrl, type WsOptions } from '../../agent/src/ws.js';
import { jitteredBackoff } from '../../shared/src/backoff.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import type { Envelope } from '../../shared/src/envelope.js';
import { generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import type { Logger } from '../../shared/src/logger.js';
import { silentLogger } from '../../shared/src/logger.js';
import { storePath } from '../controller/helpers.js';
import { captureLogger } from './log-capture.js';
import { useControllers, type AgentTestController } from './real-controller.js';
import { useTmpDirs } from './tmp-dir.js';

const until = (condition: () => boolean) => expect.poll(condition, { timeout: 15_000, interval: 20 }).toBe(true);

describe('websocket transport against the real controller', () => {
  const tmpDir = useTmpDirs();
  const startController = useControllers();
  let controller: AgentTestController;
  let identity: Identity;
  let transport: WsTransport | undefined;
  const received: Array<{ version: number; envelope: Envelope }> = [];

  function connect(overrides: Partial<WsOptions> = {}, logger: Logger = silentLogger()): WsTransport {
    transport = new WsTransport({
      controllerUrl: controller.url,
      host: 'web-1',
      identity,
      ed25519: tweetnaclEd25519,
      logger,
      onManifest: (envelope, version) => received.push({ version, envelope }),
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      ...overrides,
    });
    transport.start();
    return transport;
  }

  beforeEach(async () => {
    received.length = 0;
    transport = undefined;
    controller = await startController();
    identity = (await loadOrCreateIdentity(await tmpDir())).identity;
  });
  afterEach(() => transport?.stop());

  it('authenticates with the host key and receives the desired manifest at once and on every change', async () => {
    await controller.register('web-1', toBase64(identity.publicKey));
    await controller.setDesired('web-1', storePath('sys', 'a'));
    let session: string | undefined;
    const ws = connect({ onWelcome: (s) => (session = s.token) });
    await until(() => received.length === 1);
    expect(ws.connected).toBe(true);
    expect(controller.connected('web-1')).toBe(true);
    expect(session).toBeDefined();
    await controller.setDesired('web-1', storePath('sys', 'b'));
    await until(() => received.length === 2);
    expect(received.map((m) => m.version)).toEqual([1, 2]);
    expect(received.map((m) => m.envelope)).toEqual([controller.storedEnvelope('web-1', 1), controller.storedEnvelope('web-1', 2)]);
  });

  it('reconnects after the controller restarts and gets the manifest again', async () => {
    await controller.register('web-1', toBase64(identity.publicKey));
    await controller.setDesired('web-1', storePath('sys', 'a'));
    const changes: boolean[] = [];
    const ws = connect({ onConnectedChange: (c) => changes.push(c) });
    await until(() => received.length === 1);
    await controller.stop();
    await until(() => !ws.connected);
    await controller.restart();
    await until(() => received.length === 2);
    expect(received.map((m) => m.version)).toEqual([1, 1]);
    expect(changes).toEqual([true, false, true]);
  });

  it('drops a connection on which nothing arrives within the liveness window and dials again', async () => {
    await controller.register('web-1', toBase64(identity.publicKey));
    // The controller pings every 30 s: within 300 ms nothing arrives on an idle connection.
    const ws = connect({ livenessMs: 300 });
    await until(() => ws.connected);
    await until(() => controller.eventCount('web-1', 'connected') >= 3);
  });

  it('is not connected when the controller refuses its authentication, and keeps trying', async () => {
    await controller.register('web-1', toBase64(generateNamedKey('other').publicKey));
    const { logger, entries } = captureLogger();
    const ws = connect({}, logger);
    const refusals = () => entries().filter((e) => e.msg === "controller refused this host's websocket authentication");
    await until(() => refusals().length >= 2);
    expect(ws.connected).toBe(false);
    expect(controller.connected('web-1')).toBe(false);
    expect(entries().find((e) => e.msg === 'controller sent an error')).toMatchObject({ code: 'bad-signature' });
    expect(controller.eventCount('web-1', 'connected')).toBe(0);
  });

  it('backs off exponentially with full jitter, capped at 30 s', () => {
    const options = { baseMs: 1_000, maxMs: 30_000, random: () => 0.999 };
    expect([0, 1, 2, 3, 4, 5, 10].map((attempt) => Math.round(jitteredBackoff(attempt, options) / 1000))).toEqual([1, 2, 4, 8, 16, 30, 30]);
    expect(jitteredBackoff(4, { ...options, random: () => 0 })).toBe(0);
  });

  it('derives the websocket URL from the controller URL', () => {
    expect(websocketUrl('http://127.0.0.1:8420')).toBe('ws://127.0.0.1:8420/v1/agent/ws');
    expect(websocketUrl('https://shoal.example.org/')).toBe('wss://shoal.example.org/v1/agent/ws');
  });
});
