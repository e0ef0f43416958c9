import { count, eq } from 'drizzle-orm';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type Phase, type Report } from '../../../shared/src/protocol.js';
import { RolloutSpec } from '../../../shared/src/rollout-api.js';
import { createApp } from '../../../controller/src/app.js';
import { createDeps } from '../../../controller/src/deps.js';
import { registerHost } from '../../../controller/src/hosts/enrollment.js';
import { latestManifest } from '../../../controller/src/manifests/issue.js';
import { createManifestSigner } from '../../../controller/src/manifests/signer.js';
import { createUnsignedRelease } from '../../../controller/src/rollouts/releases.js';
import { ManualClock, storePath, testKeys } from '../helpers.js';
import { stopPostgresTestServer } from '../postgres-database.js';
import { storeEngines, type OpenedStore } from '../store-engines.js';

afterAll(async () => {
  await stopPostgresTestServer();
});

// Serialization conflicts exist on PostgreSQL only (SQLite has one writer): run in the postgres project.
const postgres = storeEngines.find((engine) => engine.name === 'postgres');
const HOSTS = 200;
const PHASES: Phase[] = ['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy'];
const OLD = (i: number) => storePath(`nixos-system-h${i}-old`, 'a');
const NEW = (i: number) => storePath(`nixos-system-h${i}-new`, 'b');

/**
 * Issue 16: on PostgreSQL every transaction is SERIALIZABLE, so report groups in flight at once and
 * the rollout ticks counting members over the same rows conflicted until the retries ran out and
 * agents got 500s. A whole fleet reporting its way through a rollout at once must be stored, every
 * report once, without a 5xx.
 */
describe.runIf(postgres)('concurrent report ingest on PostgreSQL', () => {
  let opened: OpenedStore | null = null;
  afterEach(async () => {
    await opened?.dispose();
    opened = null;
  });

  it(`stores ${HOSTS} hosts × ${PHASES.length} reports posted at once, while the rollout ticks, each once and without a 5xx`, async () => {
    opened = await postgres!.open();
    const { store } = opened;
    const clock = new ManualClock();
    const { controllerKey, trust } = testKeys('single-key');
    const deps = createDeps({ store, signer: createManifestSigner(controllerKey), releaseTrust: trust, clock });
    const app = createApp(deps);
    const names = Array.from({ length: HOSTS }, (_, i) => `h${i + 1}`);
    const tokens = new Map<string, string>();
    for (const name of names) {
      expect((await registerHost(store, clock, { name, publicKey: Buffer.alloc(32, name).toString('base64'), tags: [], actor: 'test' })).ok).toBe(true);
      tokens.set(name, (await deps.sessions.create(name)).token);
      deps.presence.websocketOpened(name);
    }
    const created = await createUnsignedRelease(
      store,
      clock,
      trust,
      { name: 'rel-1', description: '', source: null, hosts: names.map((host, i) => ({ host, storePath: NEW(i + 1) })) },
      'operator:test',
    );
    expect(created.ok).toBe(true);
    const started = await deps.rollouts.start(RolloutSpec.parse({ release: 'rel-1', waves: ['100%'], healthDeadlineSeconds: 24 * 3600, offline: { waitSeconds: 24 * 3600, then: 'fail' } }), 'operator:test');
    if (!started.ok) throw new Error(started.message);
    const id = started.value;
    // A wave's manifests are issued in batches, each on a later turn: wait for the last.
    await expect.poll(async () => (await Promise.all(names.map((name) => latestManifest(store, name)))).every(Boolean), { timeout: 60_000 }).toBe(true);

    const post = async (host: string, report: Report): Promise<number> => {
      const response = await app.request('/v1/agent/reports', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.get(host)}` },
        body: JSON.stringify({ protocol: PROTOCOL_VERSION, reports: [report] }),
      });
      await response.arrayBuffer();
      return response.status;
    };
    const reports = await Promise.all(
      names.map(async (host, i) => {
        const manifest = (await latestManifest(store, host))!;
        return PHASES.map((phase, k): Report => ({
          seq: k + 1,
          at: new Date(clock.now()).toISOString(),
          phase,
          manifestVersion: manifest.version,
          storePath: manifest.storePath,
          currentSystem: phase === 'healthy' ? manifest.storePath : OLD(i + 1),
          detail: {},
        }));
      }),
    );

    // The timer's passes run all along, as on a replica holding the engine, and time passes, so
    // the hosts' last-seen times are written too (at most every few seconds per host).
    let posting = true;
    const ticking = (async () => {
      while (posting) {
        clock.advance(5_000);
        await deps.rollouts.tickAll();
      }
    })();
    let statuses: number[];
    try {
      // Each host sends its reports one after the other, as an agent's outbox does; the hosts all at once.
      statuses = (
        await Promise.all(
          names.map(async (host, i) => {
            const answered: number[] = [];
            for (const report of reports[i]!) answered.push(await post(host, report));
            return answered;
          }),
        )
      ).flat();
    } finally {
      posting = false;
      await ticking;
    }
    expect(statuses.filter((status) => status !== 200)).toEqual([]);

    const { reports: reportRows, events, rolloutHosts } = store.t;
    const [stored] = await store.db.select({ n: count() }).from(reportRows);
    expect(stored!.n).toBe(HOSTS * PHASES.length);
    const [logged] = await store.db.select({ n: count() }).from(events).where(eq(events.kind, 'report'));
    expect(logged!.n).toBe(HOSTS * PHASES.length);
    const members = await store.db.select({ state: rolloutHosts.state }).from(rolloutHosts).where(eq(rolloutHosts.rolloutId, id));
    expect(members.map((m) => m.state)).toEqual(names.map(() => 'healthy'));
    await deps.rollouts.tickAll();
    const [rollout] = await store.db.select({ state: store.t.rollouts.state }).from(store.t.rollouts).where(eq(store.t.rollouts.id, id));
    expect(rollout!.state).toBe('succeeded');
  }, 300_000);
});
