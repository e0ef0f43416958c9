import { sql } from 'drizzle-orm';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { ChangeFeed } from '../../../controller/src/dashboard/live.js';
import { execute, testController, type TestController } from '../helpers.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

it('logs a database error of its timer as the dashboard live feed’s, and notices changes again once the database is back', async () => {
  const ctl: TestController = await testController();
  cleanup.push(() => ctl.close());
  const lines: Array<Record<string, unknown> & { err?: { message: string } }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const feed = new ChangeFeed(ctl.store, ctl.deps.rollouts, ctl.deps.bus, 10, logger);
  let notified = 0;
  cleanup.push(feed.subscribe(() => void (notified += 1)));

  await execute(ctl.store, sql`ALTER TABLE events RENAME TO events_gone`);
  await expect.poll(() => lines.length, { timeout: 10_000 }).toBeGreaterThan(0);
  expect(lines[0]).toMatchObject({ msg: 'background work failed', task: 'dashboard live feed' });
  // Each engine's words for it.
  expect(lines[0]!.err!.message).toMatch(/no such table: events|relation "events" does not exist/);

  await execute(ctl.store, sql`ALTER TABLE events_gone RENAME TO events`);
  await ctl.store.transaction(async (tx) => {
    await tx.insert(ctl.store.t.events).values({ host: null, at: ctl.clock.now(), kind: 'rollout-retried', actor: 'test', data: {} });
  });
  await expect.poll(() => notified, { timeout: 10_000 }).toBeGreaterThan(0);
});
