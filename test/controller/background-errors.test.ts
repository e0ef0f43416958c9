import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabController } from '../lab/controller.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

/**
 * Work no request awaits (the rollout timer here) meets a database error: the real controller
 * process must log it with its context and keep serving, not die with a bare stack trace.
 */
describe('a database error in background work', () => {
  let lab: Lab;
  let controller: LabController;

  beforeAll(async () => {
    lab = await Lab.start({ fixtures: await labFixtures() });
    controller = await lab.startController();
  });
  afterAll(() => lab?.cleanup());

  it('is logged with the task it broke and the controller keeps serving', async () => {
    const db = new Database(join(controller.options.stateDir, 'controller.sqlite'));
    try {
      db.pragma('foreign_keys = OFF');
      db.exec('DROP TABLE rollouts');
    } finally {
      db.close();
    }
    const line = await controller.process.waitForLine((l) => l.includes('"background work failed"'), 30_000, 'a logged background failure');
    const entry = JSON.parse(line) as { task: string; level: string; err: { message: string } };
    expect(entry).toMatchObject({ level: 'error', task: 'rollout tick' });
    expect(entry.err.message).toContain('no such table: rollouts');
    expect(controller.running).toBe(true);
    expect(await controller.client.hosts()).toEqual([]);
  });

  it('is logged for the event log too (its timer once went around runBackground and would crash the process)', async () => {
    const db = new Database(join(controller.options.stateDir, 'controller.sqlite'));
    try {
      db.pragma('foreign_keys = OFF');
      db.exec('ALTER TABLE events RENAME TO events_gone');
    } finally {
      db.close();
    }
    const line = await controller.process.waitForLine((l) => l.includes('"background work failed"') && l.includes('"task":"event log"'), 30_000, 'a logged event-log failure');
    expect((JSON.parse(line) as { err: { message: string } }).err.message).toContain('no such table: events');
    expect(controller.running).toBe(true);
    expect(await controller.client.hosts()).toEqual([]);
  });
});
