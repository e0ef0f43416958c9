import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ControllerClient } from '../../agent/src/client.js';
import { ensureEnrolled } from '../../agent/src/enrollment.js';
import { loadOrCreateIdentity, type Identity } from '../../agent/src/identity.js';
import { StateStore } from '../../agent/src/state.js';
import { SESSION_TTL_MS } from '../../controller/src/auth/sessions.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { AgentRoutes } from '../../shared/src/protocol.js';
import { generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import { silentLogger } from '../../shared/src/logger.js';
import { storePath } from '../controller/helpers.js';
import { useControllers, type AgentTestController } from './real-controller.js';
import { useTmpDirs } from './tmp-dir.js';

describe('ControllerClient against the real controller', () => {
  const tmpDir = useTmpDirs();
  const startController = useControllers();
  let controller: AgentTestController;
  let identity: Identity;
  let client: ControllerClient;
  const challenges = () => controller.exchanges.filter((e) => e.path === AgentRoutes.challenge).length;

  beforeEach(async () => {
    controller = await startController();
    identity = (await loadOrCreateIdentity(await tmpDir())).identity;
    await controller.register('web-1', toBase64(identity.publicKey));
    client = new ControllerClient({ baseUrl: controller.url, host: 'web-1', identity, ed25519: tweetnaclEd25519 });
  });

  it('authenticates by signing the challenge, then fetches the manifest and honours the ETag', async () => {
    expect(await client.getManifest()).toEqual({ ok: true, value: { kind: 'none' } });
    const version = await controller.setDesired('web-1', storePath('nixos-system-web-1', 'a'));
    const first = await client.getManifest();
    expect(first.ok && first.value).toMatchObject({ kind: 'manifest', etag: `"v${version}"`, response: { version, envelope: controller.storedEnvelope('web-1', version) } });
    expect(await client.getManifest({ etag: `"v${version}"` })).toEqual({ ok: true, value: { kind: 'not-modified' } });
    expect(challenges()).toBe(1);
  });

  it('authenticates again once when the controller no longer knows its session', async () => {
    await client.getManifest();
    // The controller's clock passes the session's end; the agent's own clock still thinks it valid.
    controller.clockOffsetMs += SESSION_TTL_MS + 60_000;
    const result = await client.sendReports([
      { seq: 1, at: new Date().toISOString(), phase: 'reconciled', manifestVersion: null, storePath: null, currentSystem: null, detail: {} },
    ]);
    expect(result.ok && result.value.ackedSeqs).toEqual([1]);
    expect(controller.exchanges.filter((e) => e.path === AgentRoutes.reports).map((e) => e.status)).toEqual([401, 200]);
    expect(challenges()).toBe(2);
    expect(controller.phases()).toEqual(['reconciled']);
  });

  it('says the controller is unreachable instead of throwing', async () => {
    await controller.stop();
    const result = await client.getManifest();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatchObject({ kind: 'unreachable', message: expect.stringContaining('ECONNREFUSED') });
  });

  it("names the controller's error when this host's signature is refused", async () => {
    const other = new ControllerClient({ baseUrl: controller.url, host: 'web-2', identity, ed25519: tweetnaclEd25519 });
    await controller.register('web-2', toBase64(generateNamedKey('other').publicKey));
    const result = await other.getManifest();
    expect(!result.ok && result.error).toMatchObject({
      kind: 'http',
      status: 401,
      code: 'bad-signature',
      message: expect.stringContaining('signature does not verify under the key enrolled for "web-2"'),
    });
  });

  it('binds its challenge signature to the controller it means: one collected by a man in the middle is refused by the real one', async () => {
    // The host is pointed at an impostor (say, over plain HTTP) that relays everything to the real controller.
    const relay: typeof fetch = (input, init) => {
      const url = new URL(input instanceof Request ? input.url : String(input));
      return fetch(new URL(`${url.pathname}${url.search}`, controller.url), init);
    };
    const fooled = new ControllerClient({ baseUrl: 'http://impostor.invalid:8420', host: 'web-1', identity, ed25519: tweetnaclEd25519, fetch: relay });
    const result = await fooled.getManifest();
    expect(!result.ok && result.error).toMatchObject({ kind: 'http', status: 401, code: 'bad-signature' });
    // The same relay with the host pointed at the real origin works: only the signed audience differs.
    const honest = new ControllerClient({ baseUrl: controller.url, host: 'web-1', identity, ed25519: tweetnaclEd25519, fetch: relay });
    expect((await honest.getManifest()).ok).toBe(true);
  });
});

describe('enrollment against the real controller', () => {
  const tmpDir = useTmpDirs();
  const startController = useControllers();

  async function setup() {
    const controller = await startController();
    const dir = await tmpDir();
    const { identity } = await loadOrCreateIdentity(dir);
    const state = await StateStore.open(dir);
    const client = new ControllerClient({ baseUrl: controller.url, host: 'web-1', identity, ed25519: tweetnaclEd25519 });
    const tokenFile = join(dir, 'enroll-token');
    await writeFile(tokenFile, `${await controller.enrollmentToken()}\n`);
    return { controller, identity, state, client, tokenFile };
  }

  it('enrolls once with the token file and remembers it', async () => {
    const { controller, identity, state, client, tokenFile } = await setup();
    const deps = { state, client, tokenFile, host: 'web-1', logger: silentLogger() };
    expect(await ensureEnrolled(deps)).toEqual({ ok: true, how: 'enrolled' });
    expect(controller.publicKeyOf('web-1')).toBe(toBase64(identity.publicKey));
    expect((await StateStore.open(join(tokenFile, '..'))).get().enrolled).toBe(true);
    expect(await ensureEnrolled(deps)).toEqual({ ok: true, how: 'already' });
    expect(controller.exchanges.filter((e) => e.path === AgentRoutes.enroll)).toHaveLength(1);
  });

  it('stops with a clear error when the host is enrolled with another key (409)', async () => {
    const { controller, state, client, tokenFile } = await setup();
    await controller.register('web-1', toBase64(generateNamedKey('old').publicKey));
    const outcome = await ensureEnrolled({ state, client, tokenFile, host: 'web-1', logger: silentLogger() });
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) {
      expect(outcome.retry).toBe(false);
      expect(outcome.message).toMatch(/^host web-1 is already enrolled on the controller with a different public key/);
    }
    expect(state.get().enrolled).toBe(false);
  });

  it('retries later when the controller is unreachable', async () => {
    const { controller, state, client, tokenFile } = await setup();
    await controller.stop();
    const outcome = await ensureEnrolled({ state, client, tokenFile, host: 'web-1', logger: silentLogger() });
    expect(outcome).toMatchObject({ ok: false, retry: true });
  });
});
