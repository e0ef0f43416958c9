import { asc, eq } from 'drizzle-orm';
import nacl from 'tweetnacl';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toBase64 } from '../../../shared/src/keys.js';
import { tweetnaclEd25519 } from '../../../shared/src/ed25519.js';
import { verifyEnvelope } from '../../../shared/src/envelope.js';
import { MANIFEST_PAYLOAD_TYPE, ManifestPayload, PROTOCOL_VERSION, ServerMessage, WsClose, challengeMessage } from '../../../shared/src/protocol.js';
import type { Envelope } from '../../../shared/src/envelope.js';
import { published } from '../../../controller/src/manifests/issue.js';
import { manifestMessage } from '../../../controller/src/ws/hub.js';
import { desiredManifest, ManualClock, newHostKeys, storePath } from '../helpers.js';
import { AgentSocket, liveController, type LiveController } from '../server-helpers.js';

describe('agent websocket hub', () => {
  let ctl: LiveController;
  const sockets: AgentSocket[] = [];
  const connect = () => {
    const socket = new AgentSocket(ctl.handle.url);
    sockets.push(socket);
    return socket;
  };
  beforeEach(async () => {
    ctl = await liveController();
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await ctl.close();
  });

  it('welcomes an authenticated host with a session that works over HTTP', async () => {
    const host = await ctl.register('web-1');
    const socket = connect();
    await socket.authenticate(host);
    const welcome = await socket.expect('welcome');
    const response = await fetch(`${ctl.handle.url}/v1/agent/manifest`, { headers: { authorization: `Bearer ${welcome.session.token}` } });
    expect(response.status).toBe(204);
    expect(ctl.handle.hub.isConnected('web-1')).toBe(true);
    const status = await fetch(`${ctl.handle.url}/v1/hosts/web-1`, { headers: { authorization: `Bearer ${ctl.operatorToken}` } });
    expect(await status.json()).toMatchObject({ connection: 'websocket', lastSeenAt: expect.any(String) });
  });

  it('sends the current manifest right after the welcome, and every new one at once', async () => {
    const host = await ctl.register('web-1');
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    const socket = connect();
    await socket.authenticate(host);
    await socket.expect('welcome');
    expect((await socket.expect('manifest')).version).toBe(1);

    // The socket never asks: a second manifest on it was pushed.
    expect((await ctl.setDesired('web-1', storePath('sys', 'b'))).status).toBe(200);
    const pushed = await socket.expect('manifest');
    expect(pushed.version).toBe(2);
    const verified = verifyEnvelope(pushed.envelope, MANIFEST_PAYLOAD_TYPE, [ctl.controllerKey], 'controller', tweetnaclEd25519);
    if (!verified.valid) throw new Error(verified.message);
    expect(ManifestPayload.parse(JSON.parse(Buffer.from(verified.payload).toString())).storePath).toBe(storePath('sys', 'b'));
  });

  it('sends a manifest message that is the typed message, with the envelope exactly as stored', async () => {
    await ctl.register('web-1');
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    const row = (await desiredManifest(ctl.handle.store, 'web-1'))!;
    const text = manifestMessage(published(row));
    const typed: ServerMessage = { type: 'manifest', protocol: PROTOCOL_VERSION, version: row.version, envelope: JSON.parse(row.envelope) as Envelope };
    expect(ServerMessage.parse(JSON.parse(text))).toEqual(typed);
    expect(text).toBe(JSON.stringify(typed));
  });

  it('pushes a host only its own manifests', async () => {
    const a = await ctl.register('web-1');
    await ctl.register('web-2');
    const socket = connect();
    await socket.authenticate(a);
    await socket.expect('welcome');
    await ctl.setDesired('web-2', storePath('sys', 'b'));
    await ctl.setDesired('web-1', storePath('sys', 'a'));
    const pushed = await socket.expect('manifest');
    expect(JSON.parse(Buffer.from(pushed.envelope.payload, 'base64').toString()).host).toBe('web-1');
  });

  it('closes with 4401 on a bad signature or an unknown host', async () => {
    const host = await ctl.register('web-1');
    const forged = connect();
    await forged.authenticate(host, newHostKeys('web-1').keys);
    expect(await forged.expect('error')).toMatchObject({ code: 'bad-signature' });
    expect((await forged.closed).code).toBe(WsClose.authFailed);

    const stranger = connect();
    await stranger.authenticate(newHostKeys('ghost'));
    expect((await stranger.closed).code).toBe(WsClose.authFailed);
    expect(ctl.handle.hub.connectedCount).toBe(0);
  });

  it('answers one auth attempt per challenge: a second try on the same nonce is ignored', async () => {
    const host = await ctl.register('web-1');
    const socket = connect();
    const { nonce } = await socket.expect('challenge');
    const sign = (keys: nacl.SignKeyPair) => toBase64(nacl.sign.detached(challengeMessage('web-1', nonce, socket.audience), keys.secretKey));
    socket.ws.send(JSON.stringify({ type: 'auth', protocol: PROTOCOL_VERSION, host: 'web-1', signature: sign(newHostKeys('web-1').keys) }));
    socket.ws.send(JSON.stringify({ type: 'auth', protocol: PROTOCOL_VERSION, host: 'web-1', signature: sign(host.keys) }));
    expect(await socket.expect('error')).toMatchObject({ code: 'bad-signature' });
    expect((await socket.closed).code).toBe(WsClose.authFailed);
    expect(ctl.handle.hub.isConnected('web-1')).toBe(false);
  });

  it('replaces a host’s first connection with its second (4409)', async () => {
    const host = await ctl.register('web-1');
    const first = connect();
    await first.authenticate(host);
    await first.expect('welcome');
    const second = connect();
    await second.authenticate(host);
    await second.expect('welcome');
    expect((await first.closed).code).toBe(WsClose.replaced);
    await ctl.setDesired('web-1', storePath());
    expect((await second.expect('manifest')).version).toBe(1);
    expect(ctl.handle.hub.connectedCount).toBe(1);
  });

  it('logs connects and disconnects as host events', async () => {
    const host = await ctl.register('web-1');
    const socket = connect();
    await socket.authenticate(host);
    await socket.expect('welcome');
    socket.close();
    await socket.closed;
    await expect.poll(() => ctl.handle.hub.isConnected('web-1')).toBe(false);
    // Written after the socket is gone, off its close handler.
    const { events } = ctl.handle.store.t;
    const kinds = async () => (await ctl.handle.store.db.select({ kind: events.kind }).from(events).where(eq(events.host, 'web-1')).orderBy(asc(events.id))).map((e) => e.kind);
    await expect.poll(kinds).toEqual(['host-registered', 'connected', 'disconnected']);
  });

  it('terminates a peer that stops answering pings', async () => {
    await ctl.close();
    ctl = await liveController({ hub: { pingIntervalMs: 50 } });
    const host = await ctl.register('web-1');
    const socket = connect();
    await socket.authenticate(host);
    await socket.expect('welcome');
    // Silence the client's automatic pong: the server must notice within two ping rounds.
    (socket.ws as unknown as { pong: () => void }).pong = () => {};
    const socketInternals = socket.ws as unknown as { _receiver: { removeAllListeners(e: string): void } };
    socketInternals._receiver.removeAllListeners('ping');
    expect((await socket.closed).code).toBe(1006);
    await expect.poll(() => ctl.handle.hub.connectedCount).toBe(0);
  });

  it('keeps a websocket host’s last-seen time fresh through pongs', async () => {
    await ctl.close();
    const clock = new ManualClock();
    ctl = await liveController({ clock, hub: { pingIntervalMs: 30 } });
    const host = await ctl.register('web-1');
    const socket = connect();
    await socket.authenticate(host);
    await socket.expect('welcome');
    clock.advance(600_000);
    const lastSeen = async () => {
      const response = await fetch(`${ctl.handle.url}/v1/hosts/web-1`, { headers: { authorization: `Bearer ${ctl.operatorToken}` } });
      return ((await response.json()) as { lastSeenAt: string }).lastSeenAt;
    };
    await expect.poll(lastSeen).toBe(new Date(clock.now()).toISOString());
  });

  it('closes with 4400 when the agent speaks another protocol version', async () => {
    const host = await ctl.register('web-1');
    const socket = connect();
    const { nonce } = await socket.expect('challenge');
    socket.ws.send(JSON.stringify({ type: 'auth', protocol: 2, host: host.name, signature: nonce }));
    expect(await socket.expect('error')).toMatchObject({ code: 'protocol-mismatch' });
    expect((await socket.closed).code).toBe(WsClose.protocolMismatch);
  });

  it('closes sockets with 4503 when the controller shuts down', async () => {
    const host = await ctl.register('web-1');
    const socket = connect();
    await socket.authenticate(host);
    await socket.expect('welcome');
    const closing = ctl.handle.close();
    expect((await socket.closed).code).toBe(WsClose.shuttingDown);
    await closing;
  });
});
