import { eq, sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../shared/src/logger.js';
import { PROTOCOL_VERSION, ReportAck } from '../../../shared/src/protocol.js';
import { reportWriter } from '../../../controller/src/reports/store.js';
import type { HostReport } from '../../../controller/src/rollouts/report.js';
import { count, eventsOf, execute, postJson, registeredHost, sampleReport, sessionFor, testController, type TestController } from '../helpers.js';


describe('report writer (group commit)', () => {
  let ctl: TestController;
  beforeEach(async () => {
    ctl = await testController();
  });
  afterEach(async () => {
    await ctl.close();
  });
  // Reads outside a transaction see committed rows only: what one reads at an ack was durably stored.
  const committed = async (host: string) => (await ctl.store.db.select({ seq: ctl.store.t.reports.seq }).from(ctl.store.t.reports).where(eq(ctl.store.t.reports.host, host))).length;
  const phaseOf = async (host: string) => {
    const { hosts } = ctl.store.t;
    return (await ctl.store.db.select({ phase: hosts.phase, seq: hosts.lastReportSeq }).from(hosts).where(eq(hosts.name, host)))[0];
  };

  it('stores the batches of many hosts arriving together in one transaction, acknowledging each after the commit', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `web-${i + 1}`);
    for (const name of names) await registeredHost(ctl, name);
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    // Each batch has a savepoint of its own (a transaction() called inside one); the transaction (and its commit) is one.
    let transactions = 0;
    const begin = ctl.store.transaction.bind(ctl.store);
    vi.spyOn(ctl.store, 'transaction').mockImplementation((fn) => {
      if (ctl.store.q === ctl.store.db) transactions += 1;
      return begin(fn);
    });
    const acks = names.map((name) =>
      writer.store(name, [sampleReport(2, 'healthy'), sampleReport(1, 'accepted')]).then(async (outcome) => ({ outcome, visible: await committed(name) })),
    );
    expect(await count(ctl, 'reports')).toBe(0);
    for (const { outcome, visible } of await Promise.all(acks)) {
      expect(outcome).toEqual({ ackedSeqs: [2, 1], stored: 2, rollouts: [], seenAt: ctl.clock.now() });
      expect(visible).toBe(2);
    }
    expect(transactions).toBe(1);
    for (const name of names) expect(await phaseOf(name)).toEqual({ phase: 'healthy', seq: 2 });
  });

  it('fails only the batch of a host that is gone, storing the others of its group', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    const [first, ghost, second] = await Promise.allSettled([
      writer.store('web-1', [sampleReport(1, 'accepted')]),
      writer.store('ghost', [sampleReport(1, 'accepted')]),
      writer.store('web-2', [sampleReport(1, 'accepted'), sampleReport(2, 'failed', { reason: 'health check web failed' })]),
    ]);
    expect(first).toMatchObject({ status: 'fulfilled', value: { stored: 1 } });
    expect(ghost.status).toBe('rejected');
    expect(second).toMatchObject({ status: 'fulfilled', value: { stored: 2 } });
    expect(await committed('web-1')).toBe(1);
    expect(await committed('ghost')).toBe(0);
    expect(await committed('web-2')).toBe(2);
    expect(await eventsOf(ctl.store, 'report')).toHaveLength(3);
  });

  it('runs the whole group again when it meets a conflict (a PostgreSQL serialization failure), instead of failing that batch', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    // What PostgreSQL raises when a concurrent transaction wrote what this one read; it poisons the
    // whole transaction, so no savepoint can keep it to one batch. Raised once, as a real one would be.
    let conflicts = 1;
    const observer = async (stored: readonly HostReport[]) => {
      if (stored.some(({ host }) => host === 'web-2') && conflicts-- > 0) throw Object.assign(new Error('could not serialize access due to concurrent update'), { code: '40001' });
      return stored.map(() => ({ rolloutId: null, events: [] }));
    };
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger(), observer);
    const outcomes = await Promise.allSettled([writer.store('web-1', [sampleReport(1, 'accepted')]), writer.store('web-2', [sampleReport(1, 'accepted')])]);
    expect(outcomes).toEqual([
      { status: 'fulfilled', value: expect.objectContaining({ stored: 1 }) },
      { status: 'fulfilled', value: expect.objectContaining({ stored: 1 }) },
    ]);
    expect((await committed('web-1')) + (await committed('web-2'))).toBe(2);
  });

  it('stores each batch in a transaction of its own when the group transaction fails', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    vi.spyOn(ctl.store, 'transaction').mockImplementationOnce(async () => {
      throw new Error('disk I/O error');
    });
    const outcomes = await Promise.all([writer.store('web-1', [sampleReport(1, 'accepted')]), writer.store('web-2', [sampleReport(1, 'accepted')])]);
    expect(outcomes.map((o) => o.stored)).toEqual([1, 1]);
    expect((await committed('web-1')) + (await committed('web-2'))).toBe(2);
  });

  it('fails every request of a group it cannot store at all with what went wrong, instead of leaving the requests unanswered', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    // No batch can be stored now.
    await execute(ctl.store, sql`ALTER TABLE reports RENAME TO reports_gone`);
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    const outcomes = await Promise.allSettled([writer.store('web-1', [sampleReport(1, 'accepted')]), writer.store('web-2', [sampleReport(1, 'accepted')])]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    // Each engine's words for it (drizzle wraps PostgreSQL's error: the words are in its cause).
    for (const outcome of outcomes) {
      const reason = (outcome as PromiseRejectedResult).reason as Error;
      expect(`${String(reason)} ${String(reason.cause)}`).toMatch(/no such table: reports|relation "reports" does not exist/);
    }
  });

  it('keeps one host’s batches of the same group idempotent and in order', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    const outcomes = await Promise.all([
      writer.store('web-1', [sampleReport(1, 'accepted'), sampleReport(2, 'realising')]),
      writer.store('web-2', [sampleReport(1, 'accepted')]),
      writer.store('web-1', [sampleReport(2, 'realising'), sampleReport(3, 'healthy')]),
      writer.store('web-1', [sampleReport(1, 'accepted')]),
    ]);
    expect(outcomes.map((o) => o.stored)).toEqual([2, 1, 1, 0]);
    expect(outcomes[2]!.ackedSeqs).toEqual([2, 3]);
    expect(await committed('web-1')).toBe(3);
    expect(await phaseOf('web-1')).toEqual({ phase: 'healthy', seq: 3 });
  });

  it('answers concurrent report requests of many agents, each stored exactly once', async () => {
    const hosts = await Promise.all(Array.from({ length: 10 }, (_, i) => registeredHost(ctl, `db-${i + 1}`)));
    const sessions = await Promise.all(hosts.map((host) => sessionFor(ctl, host)));
    const responses = await Promise.all(
      sessions.map((session) =>
        postJson(ctl, '/v1/agent/reports', { protocol: PROTOCOL_VERSION, reports: [sampleReport(1, 'accepted'), sampleReport(2, 'healthy')] }, { authorization: `Bearer ${session}` }),
      ),
    );
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(ReportAck.parse(await response.json())).toEqual({ protocol: PROTOCOL_VERSION, ackedSeqs: [1, 2], stored: 2 });
    }
    expect(await count(ctl, 'reports')).toBe(20);
  });
});
