import { eq } from 'drizzle-orm';
import { afterEach, expect } from 'vitest';
import { silentLogger } from '../../../shared/src/logger.js';
import type { Phase } from '../../../shared/src/protocol.js';
import { RolloutSpec, type RolloutSpecInput, type RolloutStatus } from '../../../shared/src/rollout-api.js';
import { storeReports } from '../../../controller/src/reports/store.js';
import { recordReports } from '../../../controller/src/rollouts/report.js';
import { createUnsignedRelease, publishBundle } from '../../../controller/src/rollouts/releases.js';
import { RolloutEngine } from '../../../controller/src/rollouts/engine.js';
import { rolloutStatus } from '../../../controller/src/rollouts/status.js';
import { desiredManifest, registeredHost, signedBundle, storePath, testController, type TestController, type TrustMode } from '../helpers.js';

/**
 * A rollout engine on a test controller with `count` hosts h1…hN, each connected, running OLD(i)
 * and named with NEW(i) in release "rel-1", and reports sent the way agents send them.
 */

export const OLD = (i: number) => storePath(`nixos-system-h${i}-old`, 'a');
export const NEW = (i: number) => storePath(`nixos-system-h${i}-new`, 'b');

export interface Lab {
  ctl: TestController;
  engine: RolloutEngine;
  names: string[];
  seq: Map<string, number>;
  report(host: string, phase: Phase, options?: { version?: number; current?: string; engine?: RolloutEngine }): Promise<void>;
  /** Every host that has a pending manifest reports `phase` for it. */
  answer(phase: Phase | ((host: string) => Phase)): Promise<string[]>;
  manifestsOf(host: string): Promise<number>;
  start(spec: Omit<RolloutSpecInput, 'release'>): Promise<string>;
  status(id: string): Promise<RolloutStatus>;
}

const labs: Lab[] = [];
afterEach(async () => {
  for (const lab of labs.splice(0)) {
    lab.engine.stopTimer();
    await lab.ctl.close();
  }
});

export function makeEngine(ctl: TestController): RolloutEngine {
  const { store, signer, releaseTrust, clock, bus, presence, manifestTtlMs } = ctl.deps;
  return new RolloutEngine({ store, signer, releaseTrust, clock, bus, presence, manifestTtlMs, logger: silentLogger() });
}

export interface LabOptions {
  mode?: TrustMode;
  /**
   * How rel-1 is made: 'unsigned' (the controller signs it; single-key mode), or 'bundle' (signed
   * by CI). 'bundle' also publishes "rel-0", a CI release authorising every OLD system, so a
   * rollback has a statement to return with; 'bundle-without-old' does not.
   */
  release?: 'unsigned' | 'bundle' | 'bundle-without-old';
}

export async function lab(count: number, tags: (i: number) => string[] = () => [], options: LabOptions = {}): Promise<Lab> {
  const ctl = await testController({ mode: options.mode ?? 'single-key' });
  const engine = makeEngine(ctl);
  const names = Array.from({ length: count }, (_, i) => `h${i + 1}`);
  const seq = new Map<string, number>();
  const answered = new Map<string, number>();
  const self: Lab = {
    ctl,
    engine,
    names,
    seq,
    async report(host, phase, options = {}) {
      const next = (seq.get(host) ?? 0) + 1;
      seq.set(host, next);
      const manifest = await desiredManifest(ctl.store, host);
      const version = options.version ?? manifest?.version ?? null;
      const current = options.current ?? (phase === 'healthy' ? manifest!.storePath : OLD(names.indexOf(host) + 1));
      const outcome = await storeReports(
        ctl.store,
        ctl.clock,
        host,
        [{ seq: next, at: new Date(ctl.clock.now()).toISOString(), phase, manifestVersion: version, storePath: manifest?.storePath ?? null, currentSystem: current, detail: phase === 'rolled-back' ? { reason: 'switch-to-configuration test failed' } : {} }],
        (stored, now) => recordReports(ctl.store, stored, now),
      );
      for (const id of outcome.rollouts) await (options.engine ?? engine).tick(id);
    },
    async answer(phase) {
      // Only the manifests out there now: answering one may issue the next, which waits for the next call.
      const waiting: Array<{ host: string; version: number }> = [];
      for (const host of names) {
        const manifest = await desiredManifest(ctl.store, host);
        if (manifest && answered.get(host) !== manifest.version) waiting.push({ host, version: manifest.version });
      }
      for (const { host, version } of waiting) {
        answered.set(host, version);
        await self.report(host, typeof phase === 'function' ? phase(host) : phase, { version });
      }
      return waiting.map((w) => w.host);
    },
    async manifestsOf(host) {
      const { manifests } = ctl.store.t;
      return (await ctl.store.db.select({ version: manifests.version }).from(manifests).where(eq(manifests.host, host))).length;
    },
    async start(spec) {
      const outcome = await engine.start(RolloutSpec.parse({ release: 'rel-1', ...spec }), 'operator:test');
      if (!outcome.ok) throw new Error(outcome.message);
      return outcome.value;
    },
    status: async (id) => (await rolloutStatus(ctl.store, id, ctl.clock.now()))!,
  };
  for (const [i, name] of names.entries()) {
    await registeredHost(ctl, name, tags(i + 1));
    // Connected, as a fleet is: a test that wants a host offline closes its websocket.
    ctl.deps.presence.websocketOpened(name);
    // Each host tells the controller what it runs now: the system a rollback returns it to.
    await self.report(name, 'reconciled', { current: OLD(i + 1) });
  }
  const release = options.release ?? (options.mode === 'two-key' ? 'bundle' : 'unsigned');
  if (release === 'bundle') {
    const old = signedBundle(ctl.ciKey, 'rel-0', names.map((host, i) => ({ host, storePath: OLD(i + 1) })));
    expect((await publishBundle(ctl.store, ctl.clock, ctl.deps.releaseTrust, old, 'operator:test')).ok).toBe(true);
  }
  const created =
    release === 'unsigned'
      ? await createUnsignedRelease(
          ctl.store,
          ctl.clock,
          ctl.deps.releaseTrust,
          { name: 'rel-1', description: '', source: null, hosts: names.map((host, i) => ({ host, storePath: NEW(i + 1) })) },
          'operator:test',
        )
      : await publishBundle(ctl.store, ctl.clock, ctl.deps.releaseTrust, signedBundle(ctl.ciKey, 'rel-1', names.map((host, i) => ({ host, storePath: NEW(i + 1) }))), 'operator:test');
  expect(created.ok).toBe(true);
  labs.push(self);
  return self;
}
