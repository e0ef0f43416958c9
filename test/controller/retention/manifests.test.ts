import { and, asc, desc, eq, lt } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyManifest } from '../../../agent/src/verify.js';
import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { MAX_VERSION_STEP, PROTOCOL_VERSION, type AgentWatermark, type ManifestResponse } from '../../../shared/src/protocol.js';
import { renewExpiringManifests } from '../../../controller/src/manifests/renew.js';
import { DEFAULT_RETENTION, pruneAll, type RetentionOptions } from '../../../controller/src/retention/prune.js';
import { lab, NEW, OLD } from '../rollouts/engine-lab.js';
import { eventsOf, postJson, registeredHost, signChallenge, signedBundle, storePath, testController, type TestController, type TestHost } from '../helpers.js';

/** Superseded manifests are pruned; what a host, an agent's watermark or a rollout may still need is not. */

const DAY = 24 * 3600_000;
const RETENTION: RetentionOptions = { ...DEFAULT_RETENTION, manifestsDays: 30 };

const controllers: TestController[] = [];
afterEach(async () => {
  for (const ctl of controllers.splice(0)) await ctl.close();
});

/** The host's manifest versions in order; with `before`, only those issued before it. */
async function versions(ctl: TestController, host: string, before?: number): Promise<number[]> {
  const { manifests } = ctl.store.t;
  const rows = await ctl.store.db
    .select({ version: manifests.version })
    .from(manifests)
    .where(and(eq(manifests.host, host), before === undefined ? undefined : lt(manifests.issuedAt, before)))
    .orderBy(asc(manifests.version));
  return rows.map((r) => r.version);
}
const issuedBefore = (ctl: TestController, host: string, at: number) => versions(ctl, host, at);

/** A day at a time, the controller's renewal re-signing every desired state before it expires: one manifest per host per day. */
async function liveDays(ctl: TestController, days: number, each: (day: number) => Promise<void> | void = () => undefined): Promise<void> {
  for (let day = 0; day < days; day++) {
    ctl.clock.advance(DAY);
    await renewExpiringManifests(ctl.deps);
    await each(day);
  }
}

async function login(ctl: TestController, host: TestHost, watermark: AgentWatermark): Promise<string> {
  const challenge = await postJson(ctl, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: host.name });
  const { nonce } = (await challenge.json()) as { nonce: string };
  const session = await postJson(ctl, '/v1/agent/session', { protocol: PROTOCOL_VERSION, host: host.name, nonce, signature: signChallenge(host, nonce), watermark });
  expect(session.status).toBe(200);
  return ((await session.json()) as { token: string }).token;
}

const watermarkEvents = async (ctl: TestController) => (await eventsOf(ctl.store, 'version-reported')).map((r) => r.data);

describe('manifest retention', () => {
  it("prunes a host's old renewals, and the agent reconnecting afterwards gets its current manifest, at its floor", async () => {
    const ctl = await testController({ mode: 'two-key' });
    controllers.push(ctl);
    const web = await registeredHost(ctl, 'web-1');
    const system = storePath('nixos-system-web-1', 'c');
    const bundle = signedBundle(ctl.ciKey, 'r1', [{ host: 'web-1', storePath: system }], { floor: 2 });
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(bundle) })).status).toBe(201);
    expect((await ctl.operator('/v1/hosts/web-1/desired', { method: 'PUT', body: JSON.stringify({ storePath: system }) })).status).toBe(200);

    // Sixty days of renewals; on day 10 the agent accepts the manifest of the day and reports it, then goes quiet.
    let held = 0;
    await liveDays(ctl, 60, async (day) => {
      if (day !== 10) return;
      held = (await versions(ctl, 'web-1')).at(-1)!;
      const token = await login(ctl, web, { highestVersion: held - 1, highestFloor: 2, highestStorePath: system });
      const report = { seq: 1, at: new Date(ctl.clock.now()).toISOString(), phase: 'healthy', manifestVersion: held, storePath: system, currentSystem: system, detail: {} };
      expect((await postJson(ctl, '/v1/agent/reports', { protocol: PROTOCOL_VERSION, reports: [report] }, { authorization: `Bearer ${token}` })).status).toBe(200);
    });
    const before = await versions(ctl, 'web-1');
    const latest = before.at(-1)!;
    expect(before).toHaveLength(61);
    const cutoff = ctl.clock.now() - 30 * DAY;
    const old = await issuedBefore(ctl, 'web-1', cutoff);

    const counts = await pruneAll(ctl.store, ctl.clock, RETENTION);
    // Everything older than 30 days went, except the version the host last reported on.
    expect(counts.manifests).toBe(old.length - 1);
    expect(await versions(ctl, 'web-1')).toEqual(before.filter((v) => !old.includes(v) || v === held));

    // The agent comes back holding what it accepted on day 10: it gets the current manifest, which it accepts.
    const token = await login(ctl, web, { highestVersion: held, highestFloor: 2, highestStorePath: system });
    expect(await watermarkEvents(ctl)).toEqual([]);
    const response = await ctl.app.request('/v1/agent/manifest', { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    const body = (await response.json()) as ManifestResponse;
    expect(body.version).toBe(latest);
    const verdict = verifyManifest(body.envelope, {
      host: 'web-1',
      trustedControllerKeys: [{ keyId: ctl.controllerKey.keyId, publicKey: ctl.controllerKey.publicKey }],
      trustedReleaseKeys: [{ keyId: ctl.ciKey.keyId, publicKey: ctl.ciKey.publicKey }],
      highestVersion: held,
      highestStorePath: system,
      highestFloor: 2,
      stateLost: false,
      maxClockSkewMs: 300_000,
      maxManifestLifetimeMs: 7 * DAY,
      now: new Date(ctl.clock.now()),
      ed25519: nodeEd25519,
    });
    expect(verdict).toMatchObject({ outcome: 'valid', manifest: { version: latest, storePath: system }, statement: { floor: 2, release: 'r1' } });

    // Renewal goes on above it, with the same statement.
    await liveDays(ctl, 1);
    const { manifests } = ctl.store.t;
    const [renewed] = await ctl.store.db.select({ version: manifests.version, floor: manifests.statementFloor }).from(manifests).where(eq(manifests.host, 'web-1')).orderBy(desc(manifests.version)).limit(1);
    expect(renewed).toEqual({ version: latest + 1, floor: 2 });
  });

  it('keeps the numbering and the watermark checks measured against the highest version ever signed', async () => {
    const ctl = await testController();
    controllers.push(ctl);
    const web = await registeredHost(ctl, 'web-1');
    expect((await ctl.operator('/v1/hosts/web-1/desired', { method: 'PUT', body: JSON.stringify({ storePath: storePath('sys', 'a') }) })).status).toBe(200);
    await liveDays(ctl, 45);
    const latest = (await versions(ctl, 'web-1')).at(-1)!;
    expect((await pruneAll(ctl.store, ctl.clock, RETENTION)).manifests).toBeGreaterThan(0);
    expect((await versions(ctl, 'web-1')).at(-1)).toBe(latest);

    // An unbelievable claim is still measured against the highest version signed, not what is left.
    await login(ctl, web, { highestVersion: latest + MAX_VERSION_STEP + 1, highestFloor: 0 });
    expect(await watermarkEvents(ctl)).toEqual([{ reported: latest + MAX_VERSION_STEP + 1, previous: latest, floor: 0, signed: latest, then: 'ignored' }]);
    // A host ahead of the controller (a restore) still has its desired state re-signed above its version.
    const token = await login(ctl, web, { highestVersion: latest + 3, highestFloor: 0 });
    expect((await watermarkEvents(ctl)).at(-1)).toMatchObject({ reported: latest + 3, then: 'reissued', version: latest + 4 });
    const response = await ctl.app.request('/v1/agent/manifest', { headers: { authorization: `Bearer ${token}` } });
    expect(((await response.json()) as ManifestResponse).version).toBe(latest + 4);
    // And the next desired state is numbered above everything ever signed.
    const set = await ctl.operator('/v1/hosts/web-1/desired', { method: 'PUT', body: JSON.stringify({ storePath: storePath('sys', 'b') }) });
    expect(((await set.json()) as { version: number }).version).toBe(latest + 5);
  });

  it("keeps what a rollout may still hear about, and the manifest a rollback would take the previous system's statement from", async () => {
    const l = await lab(2);
    const [h1, h2] = l.names as [string, string];
    // h1 was given its current system by a manifest; h2 was not.
    expect((await l.ctl.operator(`/v1/hosts/${h1}/desired`, { method: 'PUT', body: JSON.stringify({ storePath: OLD(1) }) })).status).toBe(200);
    await liveDays(l.ctl, 5);
    const lastOld = (await versions(l.ctl, h1)).at(-1)!;
    const id = await l.start({ waves: ['100%'] });
    const issued = { [h1]: (await versions(l.ctl, h1)).at(-1)!, [h2]: (await versions(l.ctl, h2)).at(-1)! };
    // Paused for two months, its hosts' manifests renewed every day, none answered.
    await l.engine.act(id, 'pause', 'operator:alice');
    await liveDays(l.ctl, 60);
    const before = { [h1]: (await versions(l.ctl, h1)), [h2]: (await versions(l.ctl, h2)) };
    await pruneAll(l.ctl.store, l.ctl.clock, RETENTION);
    // The rollout is unfinished: each of its manifests, renewals too, may be what a host holds.
    expect(await versions(l.ctl, h2)).toEqual(before[h2]);
    expect(await versions(l.ctl, h1)).toEqual(before[h1]!.filter((v) => v === lastOld || v >= issued[h1]!));

    // h1 returns with the manifest it was sent two months ago: its result counts.
    await l.report(h1, 'healthy', { version: issued[h1] });
    const member = async (host: string) => (await l.status(id)).waves.flatMap((w) => w.hosts).find((h) => h.host === host)!;
    expect((await member(h1)).state).toBe('healthy');

    // Once the rollout is over, of the old manifests only those still awaited or needed stay.
    await l.engine.act(id, 'abort', 'operator:alice');
    const cutoff = l.ctl.clock.now() - 30 * DAY;
    const recent = async (host: string) => {
      const old = await issuedBefore(l.ctl, host, cutoff);
      return new Set((await versions(l.ctl, host)).filter((v) => !old.includes(v)));
    };
    const expected = { [h1]: await recent(h1), [h2]: await recent(h2) };
    await pruneAll(l.ctl.store, l.ctl.clock, RETENTION);
    // h2: the version the aborted rollout still awaits its result on.
    expect(await versions(l.ctl, h2)).toEqual([issued[h2]!, ...expected[h2]!]);
    // h1: the newest manifest carrying a statement for OLD(1), where a rollback of this rollout would
    // return it, and the version it reported on.
    expect(await versions(l.ctl, h1)).toEqual([lastOld, issued[h1]!, ...expected[h1]!]);
    expect(expected[h1]!.size).toBeGreaterThan(25);

    await l.report(h2, 'healthy', { version: issued[h2] });
    expect((await member(h2)).state).toBe('healthy');
  });
});

