import nacl from 'tweetnacl';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { toBase64 } from '../../../shared/src/keys.js';
import { AgentRoutes, PROTOCOL_VERSION, challengeMessage, controllerAudience, type ServerMessage } from '../../../shared/src/protocol.js';
import { issueManifest } from '../../../controller/src/manifests/issue.js';
import { seedHosts, storePath } from '../helpers.js';
import { liveController, type LiveController } from '../server-helpers.js';

const HOSTS = 300;

/** A bare client: authenticates (native signing, to keep the test fast) and records manifest pushes. */
function connectAgent(url: string, host: string, keys: nacl.SignKeyPair, pushes: Map<string, string[]>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + AgentRoutes.websocket);
    ws.on('error', reject);
    ws.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ServerMessage;
      if (message.type === 'challenge') {
        const signature = toBase64(nodeEd25519.sign(challengeMessage(host, message.nonce, controllerAudience(url)), keys.secretKey));
        ws.send(JSON.stringify({ type: 'auth', protocol: PROTOCOL_VERSION, host, signature }));
      } else if (message.type === 'welcome') {
        resolve(ws);
      } else if (message.type === 'manifest') {
        const payload = JSON.parse(Buffer.from(message.envelope.payload, 'base64').toString()) as { host: string };
        pushes.get(host)!.push(payload.host);
      }
    });
  });
}

describe('agent websocket hub with many connected hosts', () => {
  let ctl: LiveController;
  const sockets: WebSocket[] = [];
  const pushes = new Map<string, string[]>();
  beforeAll(async () => {
    // Every host connects from 127.0.0.1 at the same instant: as behind one NAT address, the per-address cap must allow it.
    ctl = await liveController({ hub: { unauthenticated: { total: 10_000, perAddress: HOSTS } } });
    const names = Array.from({ length: HOSTS }, (_, i) => `host-${i}`);
    const hosts = names.map((name) => ({ name, keys: nacl.sign.keyPair() }));
    await seedHosts(ctl.handle.store, hosts.map((h) => ({ name: h.name, publicKey: toBase64(h.keys.publicKey) })));
    for (const host of hosts) pushes.set(host.name, []);
    sockets.push(...(await Promise.all(hosts.map((h) => connectAgent(ctl.handle.url, h.name, h.keys, pushes)))));
  });
  afterAll(async () => {
    for (const ws of sockets) ws.terminate();
    await ctl.close();
  });

  it('pushes every host its own new manifest at once', async () => {
    expect(ctl.handle.hub.connectedCount).toBe(HOSTS);
    for (const name of pushes.keys()) {
      const outcome = await issueManifest(ctl.handle.deps, { host: name, storePath: storePath(name, 'a'), action: 'safe-switch', rolloutId: null }, { kind: 'manifest-issued', actor: 'test' });
      expect(outcome.ok).toBe(true);
    }
    // A generous wait, not a speed claim (bench/scale.ts measures push times).
    await expect.poll(() => [...pushes.values()].filter((received) => received.length > 0).length, { timeout: 30_000 }).toBe(HOSTS);
    for (const [host, received] of pushes) expect(received).toEqual([host]);
  });
});
