import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEd25519 } from '../../shared/src/ed25519.js';
import type { Envelope } from '../../shared/src/envelope.js';
import { generateNamedKey, parseSecretKey, toBase64, type NamedSecretKey } from '../../shared/src/keys.js';
import { PROTOCOL_VERSION, type ManifestPayload, type RefusalReason } from '../../shared/src/protocol.js';
import { signStatement } from '../../shared/src/release-statement.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { assignmentPayload, serveTampered as serveTamperedEnvelope, signAssignment, storedEnvelope as storedEnvelopeOf } from './controller-db.js';
import { lastEventId, systemOf, waitForReport } from './deploy-helpers.js';

/**
 * Manifests the controller would never sign or send reach the agent the way they would if the
 * controller's database were tampered with (or the controller compromised): written into the
 * envelope column of a new row of its manifests table, which it then serves, as it is, to the
 * polling agent. Everything else is real: the controller process, the agent, Nix, the cache.
 */
describe('manifests and closures the agent must refuse', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let guard: LabHost;
  let untrustHost: LabHost;
  /** Signs assignments (what agents list in trustedControllerKeys). */
  let controllerKey: NamedSecretKey;
  /** The lab controller runs single-key mode: this release key signs statements, and agents trust it. */
  let releaseKey: NamedSecretKey;
  const context = () => lab.diagnostics();

  const storedEnvelope = (host: string, version: number) => storedEnvelopeOf(lab, host, version);
  const serveTampered = (host: string, envelope: Envelope) => serveTamperedEnvelope(lab, host, envelope, fixtures.systems.v2.path);

  /**
   * A manifest for guard-1 that, unless `overrides` say otherwise, carries a genuine release
   * statement for its host and store path: each test then fails the one check it is about.
   */
  function payload(overrides: Partial<ManifestPayload> = {}): ManifestPayload {
    const now = Date.now();
    const host = overrides.host ?? 'guard-1';
    const storePath = overrides.storePath ?? fixtures.systems.v2.path;
    const statement = signStatement(
      { protocol: PROTOCOL_VERSION, host, storePath, release: 'refusals', source: { revision: null, flakeLockHash: null }, createdAt: new Date(now).toISOString(), floor: 0 },
      releaseKey,
      nodeEd25519,
    );
    return assignmentPayload({ host, version: 100, storePath, statement, ...overrides });
  }

  /**
   * Serves `envelope` to guard-1 and checks the next thing it reports: a refusal with `refusal`,
   * its reason in the event log and the host status, and nothing changed on the host.
   */
  async function expectRefused(envelope: Envelope, refusal: RefusalReason, reason: RegExp) {
    const v3 = fixtures.systems.v3.path;
    const before = { activations: guard.activations().length, generations: guard.generations().length };
    const marker = await lastEventId(controller, 'guard-1');
    serveTampered('guard-1', envelope);

    const report = await waitForReport(controller, 'guard-1', 'the next report', () => true, { afterEventId: marker, context });
    expect(report.phase).toBe('refused');
    expect(report.detail.refusal).toBe(refusal);
    expect(report.detail.reason).toMatch(reason);
    expect(report.currentSystem).toBe(v3);

    expect(systemOf(guard)).toEqual({ current: v3, profile: v3, bootDefault: v3 });
    expect(guard.activations()).toHaveLength(before.activations);
    expect(guard.generations()).toHaveLength(before.generations);
    expect(guard.agentState()).toMatchObject({ highestVersion: 2, highestStorePath: v3, activation: null });
    const status = await controller.client.host('guard-1');
    expect(status).toMatchObject({ phase: 'refused', currentSystem: v3, lastError: report.detail.reason });
    return report;
  }

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    const untrustedCache = await lab.serveUntrustedCache();
    // The controller's renewal pass re-signs a desired state that another key signed or that
    // expired (how hosts move to a rotated key) -- it would heal the tampered rows below before a
    // slow agent polls them (seen under load: the agent then accepted the re-signed manifest).
    // Its first pass runs at start-up; no other runs while these tests tamper.
    controller = await lab.startController({ args: ['--renew-check-seconds', '86400'] });
    controllerKey = parseSecretKey(readFileSync(controller.options.controllerKey.file, 'utf8'));
    releaseKey = parseSecretKey(readFileSync(controller.options.releaseKey.file, 'utf8'));
    [guard, untrustHost] = await Promise.all([
      lab.addHost('guard-1', { bootstrap: fixtures.systems.base }),
      lab.addHost('untrust-1', { bootstrap: fixtures.systems.base }),
    ]);
    await Promise.all([
      // Plain polls, not long-polls: a tampered row reaches the agent on its next poll, whereas a
      // long-poll, which only a change made through the controller ends, would hold it for 25 s.
      guard.start({ config: { websocket: false, pollIntervalMs: 500, longPollSeconds: 0 } }),
      untrustHost.start({ config: { substituters: [lab.cache!.url, untrustedCache.url] } }),
    ]);
    // A host whose genuine manifests can be misdelivered to guard-1.
    await controller.client.registerHost({ name: 'other-1', publicKey: toBase64(generateNamedKey('other-1').publicKey) });

    await controller.waitForHost('guard-1', 'polling', (s) => s.connection === 'polling', 30_000, context);
    // Two genuine deployments: guard-1 has accepted versions 1 (v2) and 2 (v3) and runs v3.
    for (const system of [fixtures.systems.v2, fixtures.systems.v3]) {
      const { version } = await controller.client.setDesired('guard-1', system.path);
      await controller.waitForPhase('guard-1', version, 'healthy', 30_000, context);
    }
    await controller.waitForHost('untrust-1', 'connected', (s) => s.connection === 'websocket', 30_000, context);
  });
  afterAll(() => lab?.cleanup());

  it('refuses a manifest whose payload was changed after signing (bad signature)', async () => {
    const genuine = signAssignment(payload({ storePath: fixtures.systems.v2.path }), controllerKey);
    const tampered: Envelope = { ...genuine, payload: toBase64(Buffer.from(JSON.stringify(payload({ storePath: fixtures.systems.failSwitch.path })))) };
    const report = await expectRefused(tampered, 'bad-signature', /signature by lab-controller-1 does not verify/);
    // Nothing an unverified payload claims is repeated as if it were true.
    expect(report).toMatchObject({ manifestVersion: null, storePath: null });
  });

  it('refuses a manifest signed by a key it does not trust', async () => {
    const rogue = generateNamedKey('rogue-controller-1');
    await expectRefused(signAssignment(payload({ version: 101 }), rogue), 'unknown-key', /signed by rogue-controller-1, none of which is a trusted/);
  });

  it('refuses a genuine manifest of another host', async () => {
    const { version } = await controller.client.setDesired('other-1', fixtures.systems.v2.path);
    await expectRefused(storedEnvelope('other-1', version), 'wrong-host', /manifest is for host "other-1", this is "guard-1"/);
  });

  it('refuses a replay of an older genuine manifest (a downgrade to v2)', async () => {
    const report = await expectRefused(storedEnvelope('guard-1', 1), 'replayed-version', /version 1 is not above the highest accepted version 2/);
    expect(report).toMatchObject({ manifestVersion: 1, storePath: fixtures.systems.v2.path });
  });

  it('refuses a second manifest for an accepted version that names another system (equivocation)', async () => {
    await expectRefused(signAssignment(payload({ version: 2, storePath: fixtures.systems.v2.path }), controllerKey), 'equivocation', /version 2 was already accepted/);
  });

  it('refuses an expired manifest', async () => {
    const now = Date.now();
    const expired = payload({ version: 102, issuedAt: new Date(now - 7200_000).toISOString(), expiresAt: new Date(now - 3600_000).toISOString() });
    await expectRefused(signAssignment(expired, controllerKey), 'expired', /manifest expired at/);
  });

  it('refuses a signed manifest whose store path is not a store path', async () => {
    const bad = payload({ version: 103, storePath: '/nix/store/../../etc/shadow' });
    await expectRefused(signAssignment(bad, controllerKey), 'invalid-store-path', /store path/);
  });

  it('refuses a closure that no trusted cache key signed: Nix does not substitute it and the host is unchanged', async () => {
    const { base, untrusted } = fixtures.systems;
    expect(untrustHost.hasStorePath(untrusted.path)).toBe(false);
    const activations = untrustHost.activations().length;

    const manifest = await controller.client.setDesired('untrust-1', untrusted.path);
    const status = await controller.waitForPhase('untrust-1', manifest.version, 'refused', 30_000, context);

    const events = await controller.client.events('untrust-1');
    const final = events.filter((e) => e.kind === 'report').at(-1)!.data;
    expect(final).toMatchObject({ phase: 'refused', manifestVersion: manifest.version, detail: { refusal: 'untrusted-closure' } });
    const detail = final.detail as { failure: { command: string; outputTail: string } };
    expect(detail.failure.command).toContain(`nix-store --realise ${untrusted.path}`);
    expect(detail.failure.outputTail).toContain(`is not signed by any of the keys in 'trusted-public-keys'`);
    expect(status.lastError).toMatch(/no trusted cache key signed the closure/);
    // Nix did find it (in the untrusted cache) and turned it down.
    expect(lab.untrustedCache!.served(untrusted.path)).toBe(true);
    expect(untrustHost.hasStorePath(untrusted.path)).toBe(false);
    expect(systemOf(untrustHost)).toEqual({ current: base.path, profile: base.path, bootDefault: base.path });
    expect(untrustHost.activations()).toHaveLength(activations);
  });
});
