import { eq } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../shared/src/logger.js';
import type { Report } from '../../../shared/src/protocol.js';
import { foreignKeyViolation } from '../../../controller/src/db/store-errors.js';
import { reportWriter, type ReportWriter } from '../../../controller/src/reports/store.js';
import { recordReports } from '../../../controller/src/rollouts/report.js';
import { desiredManifest, eventsOf, registeredHost, sampleReport, testController, type TestController } from '../helpers.js';
import { lab } from '../rollouts/engine-lab.js';

/*
 * What storing a whole group with a statement per step must keep of storing report by report:
 * each (host, seq) once, status from the highest seq, events in seq order, each rollout result
 * counted once, reboot leases released by the report that ends them, a removed host failing
 * alone. Runs on both engines (the postgres project runs it against PostgreSQL).
 */

/** Sends the batches together, so that they form one group, and waits for every answer. */
function together(writer: ReportWriter, batches: ReadonlyArray<[string, Report[]]>) {
  return Promise.allSettled(batches.map(([host, batch]) => writer.store(host, batch)));
}

function stored(outcomes: PromiseSettledResult<{ stored: number }>[]): Array<number | 'refused'> {
  return outcomes.map((o) => (o.status === 'fulfilled' ? o.value.stored : 'refused'));
}

describe('report group stored set-based', () => {
  let ctl: TestController;
  let writer: ReportWriter;
  beforeEach(async () => {
    ctl = await testController();
    writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    for (const name of ['web-1', 'web-2', 'web-3']) await registeredHost(ctl, name);
  });
  afterEach(async () => {
    await ctl.close();
  });
  const hostRow = async (name: string) => {
    const { hosts } = ctl.store.t;
    const [row] = await ctl.store.db.select({ phase: hosts.phase, seq: hosts.lastReportSeq, lastError: hosts.lastError }).from(hosts).where(eq(hosts.name, name));
    return row;
  };
  const reportSeqs = async (host: string) => (await eventsOf(ctl.store, 'report', { host })).map((e) => (e.data as { seq: number }).seq);

  it('stores each (host, seq) once across batches of one group, a batch itself and a later group, and logs each once', async () => {
    const first = await together(writer, [
      ['web-1', [sampleReport(1, 'accepted'), sampleReport(1, 'accepted'), sampleReport(2, 'realising')]],
      ['web-2', [sampleReport(1, 'accepted')]],
      ['web-1', [sampleReport(2, 'realising'), sampleReport(3, 'activating')]],
    ]);
    expect(stored(first)).toEqual([2, 1, 1]);
    // The agent did not hear the answers and sends everything again (here or to another replica), with one new report.
    const again = await together(writer, [
      ['web-2', [sampleReport(1, 'accepted'), sampleReport(2, 'healthy')]],
      ['web-1', [sampleReport(1, 'accepted'), sampleReport(2, 'realising'), sampleReport(3, 'activating')]],
    ]);
    // web-2's status moved with its new report, which stored its last-seen time; web-1's did not move.
    expect(again).toEqual([
      { status: 'fulfilled', value: { ackedSeqs: [1, 2], stored: 1, rollouts: [], seenAt: ctl.clock.now() } },
      { status: 'fulfilled', value: { ackedSeqs: [1, 2, 3], stored: 0, rollouts: [], seenAt: null } },
    ]);
    expect(await reportSeqs('web-1')).toEqual([1, 2, 3]);
    expect(await reportSeqs('web-2')).toEqual([1, 2]);
    expect(await hostRow('web-1')).toEqual({ phase: 'activating', seq: 3, lastError: null });
    expect(await hostRow('web-2')).toEqual({ phase: 'healthy', seq: 2, lastError: null });
  });

  it('stores a group larger than one statement holds (a few hundred rows) whole, and nothing of it twice when it comes again', async () => {
    const batch = Array.from({ length: 300 }, (_, i) => sampleReport(i + 1, 'realising'));
    const first = await together(writer, [
      ['web-1', batch.slice(0, 150)],
      ['web-2', [sampleReport(1, 'accepted')]],
      ['web-1', batch.slice(150)],
    ]);
    expect(stored(first)).toEqual([150, 1, 150]);
    // Resent with 7 new ones: a group of another size, on statements of other row counts.
    const again = await together(writer, [['web-1', [...batch, ...Array.from({ length: 7 }, (_, i) => sampleReport(301 + i, 'activating'))]]]);
    expect(stored(again)).toEqual([7]);
    expect(await reportSeqs('web-1')).toEqual(Array.from({ length: 307 }, (_, i) => i + 1));
    expect(await hostRow('web-1')).toEqual({ phase: 'activating', seq: 307, lastError: null });
    expect(await hostRow('web-2')).toEqual({ phase: 'accepted', seq: 1, lastError: null });
  });

  it('logs a host’s reports in seq order whatever order its batches of a group came in', async () => {
    await together(writer, [
      ['web-1', [sampleReport(4, 'checking'), sampleReport(3, 'activating')]],
      ['web-2', [sampleReport(1, 'accepted')]],
      ['web-1', [sampleReport(2, 'realising'), sampleReport(1, 'accepted')]],
    ]);
    expect(await reportSeqs('web-1')).toEqual([1, 2, 3, 4]);
    expect(await hostRow('web-1')).toEqual({ phase: 'checking', seq: 4, lastError: null });
  });

  it('sets each host’s status from its highest seq: a late older report leaves it, a failure shows until a settled phase clears it', async () => {
    await together(writer, [
      ['web-1', [sampleReport(5, 'failed', { reason: 'health check web failed' })]],
      ['web-2', [sampleReport(2, 'healthy')]],
    ]);
    await together(writer, [
      ['web-1', [sampleReport(3, 'healthy')]],
      ['web-2', [sampleReport(3, 'realising')]],
    ]);
    expect(await hostRow('web-1')).toEqual({ phase: 'failed', seq: 5, lastError: 'health check web failed' });
    expect(await hostRow('web-2')).toEqual({ phase: 'realising', seq: 3, lastError: null });
    await together(writer, [
      ['web-1', [sampleReport(6, 'realising')]],
      ['web-3', [sampleReport(1, 'accepted')]],
    ]);
    // Still deploying: the last failure still explains the host.
    expect(await hostRow('web-1')).toEqual({ phase: 'realising', seq: 6, lastError: 'health check web failed' });
    await together(writer, [
      ['web-1', [sampleReport(7, 'healthy')]],
      ['web-3', [sampleReport(2, 'healthy')]],
    ]);
    expect(await hostRow('web-1')).toEqual({ phase: 'healthy', seq: 7, lastError: null });
  });

  it('refuses the batch of a host removed after it was admitted, as a foreign-key violation, and stores the rest of its group', async () => {
    await together(writer, [['web-2', [sampleReport(1, 'accepted')]]]);
    await ctl.store.transaction(async (tx) => {
      await tx.delete(ctl.store.t.hosts).where(eq(ctl.store.t.hosts.name, 'web-2'));
    });
    const outcomes = await together(writer, [
      ['web-1', [sampleReport(1, 'accepted')]],
      ['web-2', [sampleReport(2, 'healthy')]],
      ['web-3', [sampleReport(1, 'accepted'), sampleReport(2, 'healthy')]],
    ]);
    expect(stored(outcomes)).toEqual([1, 'refused', 2]);
    // What the report route answers as 401 invalid-session.
    expect(foreignKeyViolation((outcomes[1] as PromiseRejectedResult).reason)).toBe(true);
    expect(await reportSeqs('web-1')).toEqual([1]);
    expect(await reportSeqs('web-3')).toEqual([1, 2]);
    expect(await hostRow('web-3')).toEqual({ phase: 'healthy', seq: 2, lastError: null });
  });

  it('ends a host’s reboot lease with its first terminal report on that manifest, logging the release before that report', async () => {
    const { rebootLeases } = ctl.store.t;
    await ctl.store.transaction(async (tx) => {
      await tx.insert(rebootLeases).values([
        { host: 'web-1', manifestVersion: 1, grantedAt: 0 },
        // Granted for a newer manifest than the one web-2 reports on: it stays.
        { host: 'web-2', manifestVersion: 5, grantedAt: 0 },
      ]);
    });
    await together(writer, [
      ['web-1', [sampleReport(1, 'accepted'), sampleReport(2, 'pending-reboot'), sampleReport(3, 'healthy')]],
      ['web-2', [sampleReport(1, 'healthy')]],
    ]);
    const leases = await ctl.store.db.select({ host: rebootLeases.host }).from(rebootLeases);
    expect(leases.map((l) => l.host)).toEqual(['web-2']);
    const log = (await eventsOf(ctl.store, ['report', 'reboot-released'], { host: 'web-1' })).map((e) => `${e.kind} ${(e.data as { seq?: number; phase: string }).seq ?? (e.data as { phase: string }).phase}`);
    expect(log).toEqual(['report 1', 'reboot-released pending-reboot', 'report 2', 'report 3']);
    expect(await eventsOf(ctl.store, 'reboot-released', { host: 'web-2' })).toEqual([]);
  });
});

describe('report group with rollout members', () => {
  it('counts each member’s result once in a group mixing a rollout’s hosts with a host of none, and not again when the group is resent', async () => {
    const l = await lab(3);
    const id = await l.start({ waves: ['100%'] });
    const { store, clock } = l.ctl;
    await registeredHost(l.ctl, 'other');
    const writer = reportWriter(store, clock, silentLogger(), (reports, now) => recordReports(store, reports, now));
    const on = async (host: string, seq: number, phase: Report['phase'], detail: Report['detail'] = {}): Promise<Report> => {
      const manifest = (await desiredManifest(store, host))!;
      return { ...sampleReport(seq, phase, detail), manifestVersion: manifest.version, storePath: manifest.storePath };
    };
    // The lab's hosts reported once already (seq 1).
    const group: Array<[string, Report[]]> = [
      ['h1', [await on('h1', 2, 'accepted'), await on('h1', 3, 'healthy')]],
      ['other', [{ ...sampleReport(1, 'healthy'), manifestVersion: null, storePath: null }]],
      ['h2', [await on('h2', 2, 'accepted')]],
      ['h3', [await on('h3', 2, 'accepted'), await on('h3', 3, 'failed', { reason: 'boot failed' })]],
    ];
    const outcomes = await together(writer, group);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? [o.value.stored, o.value.rollouts] : o.reason))).toEqual([
      [2, [id]],
      [1, []],
      [1, [id]],
      [2, [id]],
    ]);
    const { rolloutHosts } = store.t;
    const members = async () =>
      Object.fromEntries(
        (await store.db.select({ host: rolloutHosts.host, state: rolloutHosts.state, reason: rolloutHosts.reason, accepted: rolloutHosts.acceptedAt, finished: rolloutHosts.finishedAt }).from(rolloutHosts)).map(
          ({ host, ...rest }) => [host, rest],
        ),
      );
    const now = clock.now();
    expect(await members()).toEqual({
      h1: { state: 'healthy', reason: null, accepted: now, finished: now },
      h2: { state: 'in-progress', reason: null, accepted: now, finished: null },
      h3: { state: 'failed', reason: 'failed: boot failed', accepted: now, finished: now },
    });
    const results = async () => (await eventsOf(store, ['rollout-host-healthy', 'rollout-host-failed'], { rolloutId: id })).map((e) => `${e.kind} ${e.host}`);
    expect(await results()).toEqual(['rollout-host-healthy h1', 'rollout-host-failed h3']);
    // Each result sits between the host's reports, after the report before it and before its own.
    const h1Log = (await eventsOf(store, ['report', 'rollout-host-healthy'], { host: 'h1' })).map((e) => (e.kind === 'report' ? (e.data as { seq: number }).seq : e.kind));
    expect(h1Log).toEqual([1, 2, 'rollout-host-healthy', 3]);

    const resent = await together(writer, group);
    expect(resent.map((o) => (o.status === 'fulfilled' ? [o.value.stored, o.value.rollouts] : o.reason))).toEqual([
      [0, []],
      [0, []],
      [0, []],
      [0, []],
    ]);
    expect(await results()).toEqual(['rollout-host-healthy h1', 'rollout-host-failed h3']);
    await together(writer, [['h2', [await on('h2', 3, 'healthy')]]]);
    expect((await members()).h2!.state).toBe('healthy');
    expect(await results()).toEqual(['rollout-host-healthy h1', 'rollout-host-failed h3', 'rollout-host-healthy h2']);
  });
});
