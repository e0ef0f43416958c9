import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../../shared/src/logger.js';
import { PROTOCOL_VERSION, ReportAck } from '../../../shared/src/protocol.js';
import { reportWriter } from '../../../controller/src/reports/store.js';
import { count, postJson, registeredHost, sampleReport, sessionFor, testController, type TestController } from '../helpers.js';


describe('report writer (group commit)', () => {
  let ctl: TestController;
  let reader: Database.Database;
  beforeEach(async () => {
    ctl = await testController();
    // A second connection sees committed rows only: what it reads at an ack is what was durably stored.
    reader = new Database(join(ctl.dir, 'controller.sqlite'), { readonly: true });
  });
  afterEach(async () => {
    reader.close();
    await ctl.close();
  });
  const committed = (host: string) => (reader.prepare('select count(*) as n from reports where host = ?').get(host) as { n: number }).n;
  const phaseOf = (host: string) => (ctl.database.sqlite.prepare('select phase, last_report_seq as seq from hosts where name = ?').get(host) as { phase: string; seq: number });

  it('stores the batches of many hosts arriving together in one transaction, acknowledging each after the commit', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `web-${i + 1}`);
    for (const name of names) await registeredHost(ctl, name);
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    // Each batch has a savepoint of its own; the transaction (and its commit) is one.
    const exec = vi.spyOn(ctl.database.sqlite, 'exec');
    const transactions = () => exec.mock.calls.filter(([statement]) => statement.startsWith('BEGIN')).length;
    const acks = names.map((name) =>
      writer.store(name, [sampleReport(2, 'healthy'), sampleReport(1, 'accepted')]).then((outcome) => ({ outcome, visible: committed(name) })),
    );
    expect(await count(ctl, 'reports')).toBe(0);
    for (const { outcome, visible } of await Promise.all(acks)) {
      expect(outcome).toEqual({ ackedSeqs: [2, 1], stored: 2, rollouts: [] });
      expect(visible).toBe(2);
    }
    expect(transactions()).toBe(1);
    for (const name of names) expect(phaseOf(name)).toEqual({ phase: 'healthy', seq: 2 });
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
    expect(committed('web-1')).toBe(1);
    expect(committed('ghost')).toBe(0);
    expect(committed('web-2')).toBe(2);
    expect((ctl.database.sqlite.prepare("select count(*) as n from events where kind = 'report'").get() as { n: number }).n).toBe(3);
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
    expect(committed('web-1') + committed('web-2')).toBe(2);
  });

  it('fails every request of a group it cannot store at all with what went wrong, instead of leaving the requests unanswered', async () => {
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    // No batch can be stored now.
    ctl.database.sqlite.exec('ALTER TABLE reports RENAME TO reports_gone');
    const writer = reportWriter(ctl.store, ctl.clock, silentLogger());
    const outcomes = await Promise.allSettled([writer.store('web-1', [sampleReport(1, 'accepted')]), writer.store('web-2', [sampleReport(1, 'accepted')])]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    for (const outcome of outcomes) expect(String((outcome as PromiseRejectedResult).reason)).toContain('no such table: reports');
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
    expect(committed('web-1')).toBe(3);
    expect(phaseOf('web-1')).toEqual({ phase: 'healthy', seq: 3 });
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
