import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Call } from '../../agent/src/client.js';
import { Outbox, OutboxSender, type NewReport } from '../../agent/src/outbox.js';
import { silentLogger } from '../../shared/src/logger.js';
import { PROTOCOL_VERSION, type Report, type ReportAck } from '../../shared/src/protocol.js';
import { SmallDisk } from '../lab/small-disk.js';
import { captureLogger } from './log-capture.js';
import { PATH_A } from './manifests.js';
import { useSmallDisks } from './small-disks.js';
import { useTmpDirs } from './tmp-dir.js';

function report(phase: NewReport['phase'], manifestVersion = 1): NewReport {
  return { at: new Date().toISOString(), phase, manifestVersion, storePath: PATH_A, currentSystem: null, detail: {} };
}

function ackAll(received: Report[][]): (reports: Report[]) => Promise<Call<ReportAck>> {
  return async (reports) => {
    received.push(reports);
    return { ok: true, value: { protocol: PROTOCOL_VERSION, ackedSeqs: reports.map((r) => r.seq), stored: reports.length } };
  };
}

const unreachable = async (): Promise<Call<ReportAck>> => ({ ok: false, error: { kind: 'unreachable', message: 'ECONNREFUSED' } });

describe('Outbox', () => {
  const tmpDir = useTmpDirs();
  const smallDisk = useSmallDisks(tmpDir);

  it('does not wedge on a full disk: a report that could not be written leaves nothing behind, and the next one goes through once space is back', async () => {
    const disk: SmallDisk = await smallDisk(256 * 1024);
    const outbox = await Outbox.open(disk.dir);
    expect((await outbox.add(report('accepted'))).seq).toBe(1);
    await disk.fill();
    await expect(outbox.add(report('realising'))).rejects.toMatchObject({ code: 'ENOSPC' });
    await expect(outbox.add(report('realising'))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(await readdir(join(disk.dir, 'outbox'))).not.toContain('000000000002.json');

    await disk.free();
    expect((await outbox.add(report('failed'))).seq).toBe(2);
    expect(outbox.pending().map((r) => [r.seq, r.phase])).toEqual([
      [1, 'accepted'],
      [2, 'failed'],
    ]);
    expect((await Outbox.open(disk.dir)).pending().map((r) => r.seq)).toEqual([1, 2]);
  });

  it('moves an outbox file that does not parse aside and logs it, keeping the others', async () => {
    const dir = await tmpDir();
    const before = await Outbox.open(dir);
    await before.add(report('accepted'));
    await before.add(report('realising'));
    await writeFile(join(dir, 'outbox', '000000000002.json'), '{"seq": 2, "pha');

    const { logger, entries } = captureLogger();
    const after = await Outbox.open(dir, { logger });
    expect(after.pending().map((r) => r.seq)).toEqual([1]);
    const names = await readdir(join(dir, 'outbox'));
    const aside = names.find((n) => n.startsWith('000000000002.json.unreadable-'));
    expect(aside).toBeDefined();
    expect(await readFile(join(dir, 'outbox', aside!), 'utf8')).toBe('{"seq": 2, "pha');
    expect(entries()).toContainEqual(expect.objectContaining({ msg: 'outbox file does not parse; moved it aside', movedTo: join(dir, 'outbox', aside!) }));
    // The number is not reused for a different report the controller might already have.
    expect((await after.add(report('failed'))).seq).toBe(3);
  });

  it('numbers reports from 1 and writes each to its own file before returning', async () => {
    const dir = await tmpDir();
    const outbox = await Outbox.open(dir);
    const first = await outbox.add(report('accepted'));
    const second = await outbox.add(report('realising'));
    expect([first.seq, second.seq]).toEqual([1, 2]);
    expect((await readdir(join(dir, 'outbox'))).sort()).toEqual(['000000000001.json', '000000000002.json', 'next-seq']);
  });

  it('keeps pending reports and the numbering across a restart', async () => {
    const dir = await tmpDir();
    const before = await Outbox.open(dir);
    for (const phase of ['accepted', 'realising', 'activating'] as const) await before.add(report(phase));
    await before.ack([1]);

    const after = await Outbox.open(dir);
    expect(after.pending().map((r) => [r.seq, r.phase])).toEqual([
      [2, 'realising'],
      [3, 'activating'],
    ]);
    expect((await after.add(report('checking'))).seq).toBe(4);
  });

  it('continues numbering after everything was acknowledged and the agent restarted', async () => {
    const dir = await tmpDir();
    const before = await Outbox.open(dir);
    await before.add(report('accepted'));
    await before.add(report('healthy'));
    await before.ack([1, 2]);
    const after = await Outbox.open(dir);
    expect(after.size).toBe(0);
    expect((await after.add(report('reconciled'))).seq).toBe(3);
  });

  it('deletes only the reports the controller acknowledged', async () => {
    const dir = await tmpDir();
    const outbox = await Outbox.open(dir);
    for (let i = 0; i < 4; i++) await outbox.add(report('accepted', i + 1));
    const sender = new OutboxSender({
      outbox,
      logger: silentLogger(),
      send: async (reports) => ({ ok: true, value: { protocol: PROTOCOL_VERSION, ackedSeqs: reports.filter((r) => r.seq % 2 === 1).map((r) => r.seq), stored: 2 } }),
    });
    await sender.flush(1_000);
    expect(outbox.pending().map((r) => r.seq)).toEqual([2, 4]);
    expect((await readdir(join(dir, 'outbox'))).sort()).toEqual(['000000000002.json', '000000000004.json', 'next-seq']);
  });

  it('delivers reports made while the controller was unreachable, in order, once it is back', async () => {
    const dir = await tmpDir();
    const outbox = await Outbox.open(dir);
    let controllerUp = false;
    let failedAttempts = 0;
    const received: Report[][] = [];
    const deliver = ackAll(received);
    const sender = new OutboxSender({
      outbox,
      logger: silentLogger(),
      initialBackoffMs: 10,
      maxBackoffMs: 20,
      send: (reports) => (controllerUp ? deliver(reports) : (failedAttempts++, unreachable())),
    });
    for (const phase of ['accepted', 'realising', 'activating', 'checking'] as const) {
      await outbox.add(report(phase));
      sender.kick();
    }
    // Failed sends after all four were added (a retry after backoff among them): nothing may have been dropped.
    const before = failedAttempts;
    await expect.poll(() => failedAttempts).toBeGreaterThanOrEqual(before + 2);
    expect(outbox.size).toBe(4);
    controllerUp = true;
    expect(await outbox.waitForAck(4, 2_000)).toBe(true);
    expect(received.flat().map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    await sender.stop();
  });

  it('tells a waiter when its report was acknowledged, and gives up at the timeout', async () => {
    const outbox = await Outbox.open(await tmpDir());
    const { seq } = await outbox.add(report('checking'));
    expect(await outbox.waitForAck(seq, 50)).toBe(false);
    const waiting = outbox.waitForAck(seq, 1_000);
    await outbox.ack([seq]);
    expect(await waiting).toBe(true);
  });

  it('sends at most one batch of 500 at a time, oldest first', async () => {
    const outbox = await Outbox.open(await tmpDir());
    for (let i = 0; i < 501; i++) await outbox.add(report('accepted'));
    const received: Report[][] = [];
    await new OutboxSender({ outbox, logger: silentLogger(), send: ackAll(received) }).flush(5_000);
    expect(received.map((batch) => batch.length)).toEqual([500, 1]);
    expect(received[1]![0]!.seq).toBe(501);
  });

  it('cuts batches of long failure reports below the controller’s body limit, keeping their order', async () => {
    const outbox = await Outbox.open(await tmpDir());
    const failure = { command: '/nix/store/x/bin/switch-to-configuration test', exitCode: 1, signal: null, timedOut: false, outputTail: 'x'.repeat(16 * 1024) };
    for (let i = 0; i < 80; i++) await outbox.add({ ...report('rolled-back'), detail: { failure } });
    const received: Report[][] = [];
    await new OutboxSender({ outbox, logger: silentLogger(), send: ackAll(received) }).flush(5_000);
    expect(received.length).toBeGreaterThan(1);
    for (const batch of received) expect(Buffer.byteLength(JSON.stringify({ protocol: PROTOCOL_VERSION, reports: batch }))).toBeLessThan(1024 * 1024);
    expect(received.flat().map((r) => r.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
  });
});
