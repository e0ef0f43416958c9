import { afterEach, describe, expect, it } from 'vitest';
import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { generateNamedKey } from '../../../shared/src/keys.js';
import { ErrorBody, ManifestPayload } from '../../../shared/src/protocol.js';
import { verifyReleaseStatement } from '../../../shared/src/release-statement.js';
import { renewExpiringManifests } from '../../../controller/src/manifests/renew.js';
import { releaseTrust } from '../../../controller/src/manifests/statements.js';
import { publishBundle } from '../../../controller/src/rollouts/releases.js';
import { count, desiredManifest, eventsOf, registeredHost, signedBundle, storePath, testController, type TestController, type TrustMode } from '../helpers.js';

const HOUR = 3600_000;
const SYSTEM = storePath('nixos-system-web-1', 'b');

/** Operator `set` and renewal: the statement a manifest carries comes from one decision (authoriseStatement). */
describe('the release statement a manifest carries', () => {
  let ctl: TestController;
  afterEach(async () => await ctl.close());

  async function start(mode: TrustMode): Promise<void> {
    ctl = await testController({ mode, manifestTtlMs: 3 * HOUR });
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
  }
  const set = (host: string, path: string) => ctl.operator(`/v1/hosts/${host}/desired`, { method: 'PUT', body: JSON.stringify({ storePath: path }) });
  const publish = async (name: string, path: string, floor: number, key = ctl.ciKey) => {
    const outcome = await publishBundle(ctl.store, ctl.clock, ctl.deps.releaseTrust, signedBundle(key, name, [{ host: 'web-1', storePath: path }], { floor }), 'test');
    expect(outcome.ok).toBe(true);
  };
  const carried = async (host = 'web-1') => {
    const row = (await desiredManifest(ctl.store, host))!;
    const envelope = JSON.parse(row.envelope) as { payload: string };
    const payload = ManifestPayload.parse(JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')));
    const verified = verifyReleaseStatement(payload.statement, { host, storePath: row.storePath }, ctl.deps.releaseTrust.keys, nodeEd25519);
    if (!verified.valid) throw new Error(verified.message);
    return { keyId: verified.keyId, ...verified.statement, manifestVersion: row.version, envelope: payload.statement };
  };

  it('two-key mode: refuses to set a path no CI statement authorises (409), and writes nothing', async () => {
    await start('two-key');
    const response = await set('web-1', SYSTEM);
    expect(response.status).toBe(409);
    expect(ErrorBody.parse(await response.json()).error).toEqual({
      code: 'no-release-statement',
      message: `no CI-signed release statement authorises ${SYSTEM} for web-1`,
    });
    expect(await count(ctl, 'manifests')).toBe(0);
  });

  it('two-key mode: refuses one host’s statement for another host', async () => {
    await start('two-key');
    await publish('r1', SYSTEM, 0);
    expect((await set('web-2', SYSTEM)).status).toBe(409);
    expect((await set('web-1', SYSTEM)).status).toBe(200);
  });

  it('two-key mode: sets a path a published release authorises, carrying CI’s statement', async () => {
    await start('two-key');
    await publish('r1', SYSTEM, 0);
    expect((await set('web-1', SYSTEM)).status).toBe(200);
    expect(await carried()).toMatchObject({ keyId: 'ci-release-1', release: 'r1', floor: 0 });
  });

  it('prefers the statement with the highest floor when several authorise the path', async () => {
    await start('two-key');
    await publish('r1', SYSTEM, 1);
    await publish('r3', SYSTEM, 3);
    await publish('r2', SYSTEM, 2);
    expect((await set('web-1', SYSTEM)).status).toBe(200);
    expect(await carried()).toMatchObject({ release: 'r3', floor: 3 });
  });

  it('stops using statements of a release key that is no longer trusted', async () => {
    await start('two-key');
    const retired = generateNamedKey('ci-release-0');
    ctl.deps.releaseTrust = releaseTrust([ctl.ciKey, retired], null);
    await publish('old', SYSTEM, 0, retired);
    ctl.deps.releaseTrust = releaseTrust([ctl.ciKey], null);
    const response = await set('web-1', SYSTEM);
    expect(response.status).toBe(409);
    expect(ErrorBody.parse(await response.json()).error.message).toContain('none is signed by a key in trustedReleaseKeys any more');
  });

  it('single-key mode: signs a statement for an unnamed path itself, at the highest floor known', async () => {
    await start('single-key');
    await publish('r5', storePath('nixos-system-other', 'c'), 5);
    expect((await set('web-1', SYSTEM)).status).toBe(200);
    expect(await carried()).toMatchObject({ keyId: 'single-release-1', release: 'adhoc', floor: 5, source: { revision: null, flakeLockHash: null } });
  });

  it('renews a manifest with the very statement it carried', async () => {
    await start('two-key');
    await publish('r1', SYSTEM, 0);
    expect((await set('web-1', SYSTEM)).status).toBe(200);
    const before = await carried();
    ctl.clock.advance(2 * HOUR);
    expect(await renewExpiringManifests(ctl.deps)).toBe(1);
    const after = await carried();
    expect(after.manifestVersion).toBe(before.manifestVersion + 1);
    expect(after.envelope).toEqual(before.envelope);
  });

  it('does not renew a manifest whose statement no trusted key signed any more; logs it once', async () => {
    await start('two-key');
    await publish('r1', SYSTEM, 0);
    expect((await set('web-1', SYSTEM)).status).toBe(200);
    ctl.deps.releaseTrust = releaseTrust([generateNamedKey('ci-release-2')], null);
    ctl.clock.advance(2 * HOUR);
    expect(await renewExpiringManifests(ctl.deps)).toBe(0);
    ctl.clock.advance(HOUR);
    expect(await renewExpiringManifests(ctl.deps)).toBe(0);
    const events = await eventsOf(ctl.store, 'manifest-withheld');
    expect(events.map((e) => e.data)).toEqual([
      { version: 1, storePath: SYSTEM, reason: `no CI-signed release statement authorises ${SYSTEM} for web-1 (statements for it are stored, but none is signed by a key in trustedReleaseKeys any more)` },
    ]);
  });
});
