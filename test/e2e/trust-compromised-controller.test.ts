import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../../shared/src/envelope.js';
import { generateNamedKey, toBase64, type NamedSecretKey } from '../../shared/src/keys.js';
import { PROTOCOL_VERSION, type RefusalReason } from '../../shared/src/protocol.js';
import { signStatement, type ReleaseBundle } from '../../shared/src/release-statement.js';
import { loadKey, signedBundle } from '../lab/ci.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import type { LabHost } from '../lab/host.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { assignmentPayload, serveTampered, signAssignment, storedEnvelope, withControllerDb } from './controller-db.js';
import { lastEventId, systemOf, waitForReport } from './deploy-helpers.js';

/**
 * The attacker owns the controller: its database, its files, and so its controller key (the lab's
 * key file). They do not have CI's release key. Whatever they make the controller serve, the host
 * installs only a system a CI statement authorises for it, at or above the floor it accepted, in
 * an assignment it has not seen before. Each attempt is refused on the host with its own reason,
 * and the host is left exactly as it was: running system, profile, boot default, no activation,
 * and the agent's record of what it accepted not advanced.
 *
 * The stage: CI published `old-1` (floor 1: guard-1 and other-1 → v2) and `sec-2` (floor 2, after
 * a security fix: guard-1 → v3, other-1 → newKernel). guard-1 accepted v2 (version 1), then v3
 * (version 2, floor 2). `newKernel` is in the trusted cache, but no statement authorises it for
 * guard-1: it is the system the attacker wants there.
 */
describe('a compromised controller (database, files, controller key; not the CI key)', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let guard: LabHost;
  /** The stolen controller key: assignments signed with it verify on every host. */
  let stolenKey: NamedSecretKey;
  let old1: ReleaseBundle;
  let sec2: ReleaseBundle;
  const context = () => lab.diagnostics();

  const statementOf = (bundle: ReleaseBundle, host: string): Envelope => bundle.hosts.find((h) => h.host === host)!.statement;

  /** An assignment for guard-1 as the attacker signs it; `version` above everything guard-1 accepted. */
  function assignment(storePath: string, statement: Envelope | null, version = 50): Envelope {
    return signAssignment(assignmentPayload({ host: 'guard-1', version, storePath, statement }), stolenKey);
  }

  /** What guard-1 looks like after its two genuine deployments; every refusal must leave it so. */
  function expectUnchanged(before: { activations: number; generations: number }) {
    const v3 = fixtures.systems.v3.path;
    expect(systemOf(guard)).toEqual({ current: v3, profile: v3, bootDefault: v3 });
    expect(guard.activations()).toHaveLength(before.activations);
    expect(guard.generations()).toHaveLength(before.generations);
    expect(guard.agentState()).toMatchObject({ highestVersion: 2, highestStorePath: v3, highestFloor: 2, activation: null });
    expect(guard.hasStorePath(fixtures.systems.newKernel.path)).toBe(false);
  }

  /** Runs `attack` (which makes the controller serve something), then checks guard-1's next report and state. */
  async function expectRefused(attack: () => Promise<unknown> | unknown, refusal: RefusalReason, reason: RegExp) {
    const before = { activations: guard.activations().length, generations: guard.generations().length };
    const marker = await lastEventId(controller, 'guard-1');
    await attack();
    const report = await waitForReport(controller, 'guard-1', 'the next report', () => true, { afterEventId: marker, context });
    expect(report).toMatchObject({ phase: 'refused', currentSystem: fixtures.systems.v3.path, detail: { refusal } });
    expect(report.detail.reason).toMatch(reason);
    expectUnchanged(before);
    expect(await controller.client.host('guard-1')).toMatchObject({ phase: 'refused', currentSystem: fixtures.systems.v3.path, lastError: report.detail.reason });
    return report;
  }

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    await lab.serveCache();
    controller = await lab.startController({ trust: 'two-key' });
    stolenKey = loadKey(controller.options.controllerKey);
    const ciKey = loadKey(controller.options.releaseKey);
    guard = await lab.addHost('guard-1', { bootstrap: fixtures.systems.base });
    // Plain polls, not long-polls: a tampered row reaches the agent on its next poll, whereas a
    // long-poll, which only a change made through the controller ends, would hold it for 25 s.
    await guard.start({ config: { websocket: false, pollIntervalMs: 500, longPollSeconds: 0 } });
    // A host whose genuine statements the attacker would like to reuse on guard-1.
    await controller.client.registerHost({ name: 'other-1', publicKey: toBase64(generateNamedKey('other-1').publicKey) });
    await controller.waitForHost('guard-1', 'polling', (s) => s.connection === 'polling', 30_000, context);

    const { v2, v3, newKernel } = fixtures.systems;
    old1 = signedBundle('old-1', { 'guard-1': v2.path, 'other-1': v2.path }, ciKey, { floor: 1 });
    sec2 = signedBundle('sec-2', { 'guard-1': v3.path, 'other-1': newKernel.path }, ciKey, { floor: 2 });
    await controller.client.publishBundle(old1);
    await controller.client.publishBundle(sec2);
    for (const system of [v2, v3]) {
      const { version } = await controller.client.setDesired('guard-1', system.path);
      await controller.waitForPhase('guard-1', version, 'healthy', 30_000, context);
    }
    expectUnchanged({ activations: guard.activations().length, generations: guard.generations().length });
  });
  afterAll(() => lab?.cleanup());

  describe('assignments signed with the stolen controller key', () => {
    it('cannot install a path no statement authorises: carrying the statement for another path', async () => {
      const { v3, newKernel } = fixtures.systems;
      await expectRefused(
        () => serveTampered(lab, 'guard-1', assignment(newKernel.path, statementOf(sec2, 'guard-1'), 50), newKernel.path),
        'statement-mismatch',
        new RegExp(`release statement authorises ${v3.path}, the assignment names ${newKernel.path}`),
      );
    });

    it('cannot install a path no statement authorises: carrying no statement', async () => {
      const { newKernel } = fixtures.systems;
      await expectRefused(
        () => serveTampered(lab, 'guard-1', assignment(newKernel.path, null, 51), newKernel.path),
        'no-release-statement',
        /carries no release statement; this host runs only systems a trusted release key \(CI\) authorised/,
      );
    });

    it('cannot make a statement itself: one signed with the controller key is not a release statement', async () => {
      const { newKernel } = fixtures.systems;
      const forged = signStatement(
        { protocol: PROTOCOL_VERSION, host: 'guard-1', storePath: newKernel.path, release: 'sec-3', source: { revision: null, flakeLockHash: null }, createdAt: new Date().toISOString(), floor: 9 },
        stolenKey,
      );
      await expectRefused(
        () => serveTampered(lab, 'guard-1', assignment(newKernel.path, forged, 52), newKernel.path),
        'statement-unknown-key',
        new RegExp(`release statement signed by ${stolenKey.keyId}, none of which is a trusted release key`),
      );
    });

    it('cannot move the host below its floor with a genuine older CI statement', async () => {
      await expectRefused(
        () => serveTampered(lab, 'guard-1', assignment(fixtures.systems.v2.path, statementOf(old1, 'guard-1'), 53), fixtures.systems.v2.path),
        'below-floor',
        /release "old-1" has security floor 1, below the floor 2 this host already accepted/,
      );
    });

    it("cannot use another host's genuine statement", async () => {
      const { newKernel } = fixtures.systems;
      await expectRefused(
        () => serveTampered(lab, 'guard-1', assignment(newKernel.path, statementOf(sec2, 'other-1'), 54), newKernel.path),
        'statement-wrong-host',
        /release statement is for host "other-1", not "guard-1"/,
      );
    });

    it('cannot replay an old genuine assignment (v2, version 1)', async () => {
      const report = await expectRefused(
        () => serveTampered(lab, 'guard-1', storedEnvelope(lab, 'guard-1', 1), fixtures.systems.v2.path),
        'replayed-version',
        /version 1 is not above the highest accepted version 2/,
      );
      expect(report).toMatchObject({ manifestVersion: 1, storePath: fixtures.systems.v2.path });
    });
  });

  describe('the database alone, tampered, with the controller issuing from it', () => {
    it('a release row pointed at another system: the controller issues it, the host refuses the mismatch', async () => {
      const { v3, newKernel } = fixtures.systems;
      withControllerDb(lab, (db) =>
        db.prepare("update release_hosts set store_path = ? where release = 'sec-2' and host = 'guard-1'").run(newKernel.path),
      );
      await expectRefused(
        async () => {
          // As an operator (or the attacker with an admin token) would: the controller finds "a
          // statement" stored for newKernel and signs an assignment carrying it.
          const issued = await controller.client.setDesired('guard-1', newKernel.path);
          expect(issued.storePath).toBe(newKernel.path);
        },
        'statement-mismatch',
        new RegExp(`release statement authorises ${v3.path}, the assignment names ${newKernel.path}`),
      );
    });

    it("a release row given another host's statement: the controller issues it, the host refuses it", async () => {
      // Another system the trusted cache serves. (Not newKernel again: the controller also keeps the
      // statement each manifest carried, and would pick the one it sent in the attempt above.)
      const target = fixtures.systems.hangSwitch.path;
      withControllerDb(lab, (db) =>
        db
          .prepare("update release_hosts set store_path = ?, statement = ? where release = 'old-1' and host = 'guard-1'")
          .run(target, JSON.stringify(statementOf(sec2, 'other-1'))),
      );
      await expectRefused(() => controller.client.setDesired('guard-1', target), 'statement-wrong-host', /release statement is for host "other-1", not "guard-1"/);
    });

    it('a release inserted with statements the attacker signed: the controller itself refuses to issue from it', async () => {
      const target = fixtures.systems.failHealth.path;
      const forged = signStatement(
        { protocol: PROTOCOL_VERSION, host: 'guard-1', storePath: target, release: 'evil-1', source: { revision: null, flakeLockHash: null }, createdAt: new Date().toISOString(), floor: 9 },
        stolenKey,
      );
      withControllerDb(lab, (db) =>
        db.transaction(() => {
          db.prepare("insert into releases (name, description, created_at, created_by, floor, key_id, signed_by, signed_at) values ('evil-1', '', ?, 'operator:ci', 9, 'lab-release-1', 'ci', ?)").run(Date.now(), Date.now());
          db.prepare("insert into release_hosts (release, host, store_path, statement) values ('evil-1', 'guard-1', ?, ?)").run(target, JSON.stringify(forged));
        })(),
      );
      const before = { activations: guard.activations().length, generations: guard.generations().length };
      const desiredBefore = (await controller.client.host('guard-1')).desired?.version;
      const refused = await controller.client.request('PUT', '/v1/hosts/guard-1/desired', { storePath: target, action: 'safe-switch' });
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ error: { code: 'no-release-statement' } });
      expect((refused.body as { error: { message: string } }).error.message).toMatch(
        new RegExp(`no CI-signed release statement authorises ${target} for guard-1 \\(statements for it are stored, but none is signed by a key in trustedReleaseKeys`),
      );
      // The rollout path asks the same question: the host fails in the rollout, nothing is sent.
      const rollout = await controller.client.startRollout({ release: 'evil-1', waves: ['100%'] });
      const halted = await controller.waitForRollout(rollout.id, 'halted', { context });
      expect(halted.waves[0]!.hosts[0]).toMatchObject({ host: 'guard-1', state: 'failed', manifestVersion: null });
      expect((await controller.client.host('guard-1')).desired?.version).toBe(desiredBefore);
      expectUnchanged(before);
    });

    it('leaves the host working: the next genuine CI release installs', async () => {
      const { newKernel } = fixtures.systems;
      await controller.client.publishBundle(signedBundle('sec-3', { 'guard-1': newKernel.path }, loadKey(controller.options.releaseKey), { floor: 3 }));
      const rollout = await controller.client.startRollout({ release: 'sec-3', waves: ['100%'] });
      await controller.waitForRollout(rollout.id, 'succeeded', { context });
      expect(systemOf(guard)).toEqual({ current: newKernel.path, profile: newKernel.path, bootDefault: newKernel.path });
      expect(guard.agentState()).toMatchObject({ highestStorePath: newKernel.path, highestFloor: 3 });
    });
  });
});
