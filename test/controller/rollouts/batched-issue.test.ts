import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../shared/src/logger.js';
import { RolloutSpec } from '../../../shared/src/rollout-api.js';
import { registerHost } from '../../../controller/src/hosts/enrollment.js';
import { ISSUE_BATCH } from '../../../controller/src/rollouts/advance.js';
import { RolloutEngine } from '../../../controller/src/rollouts/engine.js';
import { createUnsignedRelease } from '../../../controller/src/rollouts/releases.js';
import { rolloutStatus } from '../../../controller/src/rollouts/status.js';
import { sql } from 'drizzle-orm';
import { eventsOf, storePath, testController, type TestController } from '../helpers.js';
import { onPostgres } from '../test-engine.js';

const HOSTS = ISSUE_BATCH * 2 + 37;

const open: Array<{ ctl: TestController; engines: RolloutEngine[] }> = [];
afterEach(async () => {
  for (const { ctl, engines } of open.splice(0)) {
    for (const engine of engines) engine.stopTimer();
    await ctl.close();
  }
});

async function fleet(): Promise<{ ctl: TestController; names: string[]; engine: () => RolloutEngine; published: string[] }> {
  const ctl = await testController();
  const engines: RolloutEngine[] = [];
  open.push({ ctl, engines });
  const names = Array.from({ length: HOSTS }, (_, i) => `h${i + 1}`);
  for (const name of names) {
    // Real keys are not needed here, and tweetnacl would take seconds to make a thousand.
    const outcome = await registerHost(ctl.store, ctl.clock, { name, publicKey: randomBytes(32).toString('base64'), tags: [], actor: 'test' });
    expect(outcome.ok).toBe(true);
  }
  const release = await createUnsignedRelease(
    ctl.store,
    ctl.clock,
    ctl.deps.releaseTrust,
    { name: 'rel-1', description: '', source: null, hosts: names.map((host, i) => ({ host, storePath: storePath(`nixos-system-h${i + 1}`, 'b') })) },
    'operator:test',
  );
  expect(release.ok).toBe(true);
  const published: string[] = [];
  ctl.deps.bus.onPublish((manifest) => published.push(manifest.host));
  const engine = () => {
    const { store, signer, releaseTrust, clock, bus, presence, manifestTtlMs } = ctl.deps;
    const made = new RolloutEngine({ store, signer, releaseTrust, clock, bus, presence, manifestTtlMs, logger: silentLogger() });
    engines.push(made);
    return made;
  };
  return { ctl, names, engine, published };
}

const manifestCounts = (ctl: TestController) => ctl.store.rows<{ host: string; n: number }>(sql`select host, count(*) as n from manifests group by host`);

/** Until `check` holds: continuations run off the event loop, and on PostgreSQL each waits on the database. */
async function settle(check: () => boolean): Promise<void> {
  await expect.poll(check, { interval: 5 }).toBe(true);
}

describe('issuing a large wave', () => {
  it('answers the start with the first batch issued and issues the rest in later transactions, each host once', async () => {
    const { ctl, engine, published } = await fleet();
    const outcome = await engine().start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'] }), 'operator:test');
    if (!outcome.ok) throw new Error(outcome.message);
    const first = (await rolloutStatus(ctl.store, outcome.value, ctl.clock.now()))!;
    expect(first.state).toBe('running');
    expect(first.waves[0]!.counts).toMatchObject({ inProgress: ISSUE_BATCH, pending: HOSTS - ISSUE_BATCH });
    expect(published).toHaveLength(ISSUE_BATCH);

    await settle(() => published.length === HOSTS);
    const done = (await rolloutStatus(ctl.store, outcome.value, ctl.clock.now()))!;
    expect(done.waves[0]!.counts).toMatchObject({ inProgress: HOSTS, pending: 0 });
    expect(new Set(published).size).toBe(HOSTS);
    const counts = await manifestCounts(ctl);
    expect(counts).toHaveLength(HOSTS);
    expect(counts.every((row) => row.n === 1)).toBe(true);
    // Every member points at the manifest it was issued, in the transaction that issued it.
    const [mismatched] = await ctl.store.rows<{ n: number }>(
      sql`select count(*) as n from rollout_hosts rh left join manifests m on m.host = rh.host and m.version = rh.manifest_version
          where m.version is null or m.store_path != rh.target_path or rh.state != 'issued'`,
    );
    expect(mismatched!.n).toBe(0);
    // One event per issued host, in the rollout's audit log and the host's history alike, saying which manifest it got.
    const events = await eventsOf(ctl.store, ['manifest-issued', 'rollout-host-issued']);
    expect(events).toHaveLength(HOSTS);
    const h1 = events.find((e) => e.host === 'h1')!;
    expect(h1).toMatchObject({ kind: 'rollout-host-issued', rolloutId: outcome.value });
    expect(h1.data).toMatchObject({ version: 1, storePath: storePath('nixos-system-h1', 'b'), action: 'safe-switch', rolloutId: outcome.value, wave: 1 });
  });

  it('refuses a start that overlaps an active rollout on hosts spread over the whole plan, counting every one', async () => {
    const { ctl, names, engine } = await fleet();
    // An active rollout on every third host: the overlap check reads the plan's names in chunks
    // (of 256 or 500), and busy hosts sit in each of them, the last ones in a chunk of a few.
    const busy = names.filter((_, i) => i % 3 === 2);
    const release = await createUnsignedRelease(
      ctl.store,
      ctl.clock,
      ctl.deps.releaseTrust,
      { name: 'rel-2', description: '', source: null, hosts: busy.map((host) => ({ host, storePath: storePath(`nixos-system-${host}-2`, 'c') })) },
      'operator:test',
    );
    expect(release.ok).toBe(true);
    const first = await engine().start(RolloutSpec.parse({ release: 'rel-2', waves: ['100%'], approvalBefore: [0] }), 'operator:test');
    if (!first.ok) throw new Error(first.message);
    const second = await engine().start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'] }), 'operator:test');
    expect(second).toMatchObject({ ok: false, kind: 'rollout-overlap' });
    expect(second.ok || second.message).toContain(`rollout ${first.value} is still active on ${busy.length} of these hosts`);
    // Once it is aborted the hosts are free again.
    expect((await engine().act(first.value, 'abort', 'operator:test')).ok).toBe(true);
    expect((await engine().start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'], approvalBefore: [0] }), 'operator:test')).ok).toBe(true);
  });

  it.runIf(onPostgres)("leaves PostgreSQL's planner knowing how many members a rollout it started has", async () => {
    // Left to autovacuum, the statistics taken while rollout_hosts was empty stood for up to a
    // minute: the planner took a rollout's members for a few dozen and read them all for each
    // report group and each batch of the wave (Store.grewInBulk).
    const { ctl, engine } = await fleet();
    const outcome = await engine().start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'] }), 'operator:test');
    if (!outcome.ok) throw new Error(outcome.message);
    const [table] = await ctl.store.rows<{ reltuples: number }>(sql`select reltuples::bigint as reltuples from pg_class where relname = 'rollout_hosts'`);
    expect(table!.reltuples).toBe(HOSTS);
  });

  it('never issues a host twice when a restarted controller continues a wave another process left half-issued', async () => {
    const { ctl, engine, published } = await fleet();
    const original = engine();
    const outcome = await original.start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'] }), 'operator:test');
    if (!outcome.ok) throw new Error(outcome.message);
    // A second engine on the same database (the controller after a restart) ticks before the first continues.
    const restarted = engine();
    const engines = [original, restarted];
    await restarted.tickAll();
    // The restarted engine issued a batch of its own (on PostgreSQL, where its tick waits on the
    // database, the original's continuation may have run meanwhile too), no host twice.
    expect(published.length).toBeGreaterThanOrEqual(ISSUE_BATCH * 2);
    expect(new Set(published).size).toBe(published.length);
    await settle(() => published.length === HOSTS);
    // Both engines' continuations have run (each would have issued a host twice, if any could).
    await settle(() => engines.every((e) => e.continuationsPending === 0));
    expect(engines.every((e) => e.continuationsPending === 0)).toBe(true);
    expect(published).toHaveLength(HOSTS);
    expect((await manifestCounts(ctl)).every((row) => row.n === 1)).toBe(true);
  });

  it('stops issuing the rest of a wave once the rollout is paused between batches', async () => {
    const { ctl, engine, published } = await fleet();
    const first = engine();
    const outcome = await first.start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'] }), 'operator:test');
    if (!outcome.ok) throw new Error(outcome.message);
    expect((await first.act(outcome.value, 'pause', 'operator:test')).ok).toBe(true);
    // The batch the start scheduled has run, on a paused rollout.
    await settle(() => first.continuationsPending === 0);
    expect(first.continuationsPending).toBe(0);
    // The wave stops at a batch boundary with hosts left pending. Which boundary depends on whether
    // the pause committed before the next batch did: on PostgreSQL both run side by side, and a
    // batch that committed first was issued legitimately.
    const issuedWhilePaused = published.length;
    expect(issuedWhilePaused % ISSUE_BATCH).toBe(0);
    expect(issuedWhilePaused).toBeLessThan(HOSTS);
    expect((await rolloutStatus(ctl.store, outcome.value, ctl.clock.now()))!.waves[0]!.counts.pending).toBe(HOSTS - issuedWhilePaused);
    expect((await first.act(outcome.value, 'resume', 'operator:test')).ok).toBe(true);
    await settle(() => published.length === HOSTS);
    expect((await rolloutStatus(ctl.store, outcome.value, ctl.clock.now()))!.waves[0]!.counts.pending).toBe(0);
  });
});
