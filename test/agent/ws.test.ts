import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateIdentity, type Identity } from '../../agent/src/identity.js';
import { WsTransport, websocketUrl, type WsOptions } from '../../agent/src/ws.js';
import { jitteredBackoff } from '../../shared/src/backoff.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import type { Envelope } from '../../shared/src/envelope.js';
import { generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import { silentLogger } from '../../shared/src/logger.js';
import { FakeController } from './fake-controller.js';
import { signedManifest } from './manifests.js';
import { useTmpDirs } from './tmp-dir.js';

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('websocket transport', () => {
  const tmpDir = useTmpDirs();
  let controller: FakeController;
  let identity: Identity;
  let transport: WsTransport | undefined;
  const received: Array<{ version: number; envelope: Envelope }> = [];
  const release = generateNamedKey('release-1');

  function connect(overrides: Partial<WsOptions> = {}): WsTransport {
    transport = new WsTransport({
      controllerUrl: controller.url,
      host: 'web-1',
      identity,
      ed25519: tweetnaclEd25519,
      logger: silentLogger(),
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
    controller = new FakeController();
    await controller.start();
    identity = (await loadOrCreateIdentity(await tmpDir())).identity;
    controller.hosts.set('web-1', toBase64(identity.publicKey));
  });
  afterEach(async () => {
    transport?.stop();
    await controller.stop().catch(() => {});
  });

  it('authenticates with the host key and receives the desired manifest at once and on every change', async () => {
    controller.setManifest(1, signedManifest(release, { version: 1 }));
    let session: string | undefined;
    const ws = connect({ onWelcome: (s) => (session = s.token) });
    await until(() => received.length === 1);
    expect(ws.connected).toBe(true);
    expect(session).toBeDefined();
    controller.setManifest(2, signedManifest(release, { version: 2 }));
    await until(() => received.length === 2);
    expect(received.map((m) => m.version)).toEqual([1, 2]);
  });

  it('reconnects after the controller restarts and gets the manifest again', async () => {
    controller.setManifest(1, signedManifest(release, { version: 1 }));
    const changes: boolean[] = [];
    const ws = connect({ onConnectedChange: (c) => changes.push(c) });
    await until(() => received.length === 1);
    await controller.stop();
    await until(() => !ws.connected);
    await controller.restart();
    await until(() => received.length === 2);
    expect(changes).toEqual([true, false, true]);
  });

  it('drops a connection on which nothing arrives within the liveness window and dials again', async () => {
    const ws = connect({ livenessMs: 300 });
    await until(() => ws.connected);
    await until(() => controller.connections >= 3, 5_000);
  });

  it('is not connected when the controller refuses its authentication', async () => {
    controller.hosts.set('web-1', toBase64(generateNamedKey('other').publicKey));
    const ws = connect();
    await until(() => controller.connections >= 2);
    expect(ws.connected).toBe(false);
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
