import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../controller/src/event-log.js';
import { prettyLine } from '../../shared/src/log-format.js';
import { registeredHost, storePath, testController, type TestController } from './helpers.js';
import { stopPostgresTestServer } from './postgres-database.js';
import { storeEngines } from './store-engines.js';

let ctl: TestController;
afterEach(async () => await ctl?.close());
afterAll(async () => await stopPostgresTestServer());

describe('the controller log', () => {
  it('logs every manifest issued and what a rollout does, at info, after commit', async () => {
    ctl = await testController();
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const log = new EventLog(ctl.store, logger);
    await registeredHost(ctl, 'web-1');
    await registeredHost(ctl, 'web-2');
    expect((await ctl.operator('/v1/hosts/web-1/desired', { method: 'PUT', body: JSON.stringify({ storePath: storePath('nixos-system-web-1', 'b') }) })).status).toBe(200);
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify({ name: 'v2', hosts: [{ host: 'web-2', storePath: storePath('nixos-system-web-2', 'b') }] }) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'v2', waves: ['100%'] }) });
    expect(started.status).toBe(201);
    const { id } = (await started.json()) as { id: string };
    expect((await ctl.operator(`/v1/rollouts/${id}/abort`, { method: 'POST' })).status).toBe(200);
    await log.flush();

    const seen = lines.map((l) => [l.level, l.msg, l.host ?? null]);
    expect(seen).toContainEqual([30, 'desired-set', 'web-1']);
    expect(seen).toContainEqual([30, 'rollout-started', null]);
    expect(seen).toContainEqual([30, 'rollout-wave-started', null]);
    expect(seen).toContainEqual([30, 'rollout-host-issued', null]);
    expect(seen).toContainEqual([30, 'rollout-aborted', null]);
    expect(lines.find((l) => l.msg === 'rollout-wave-started')).toMatchObject({ rolloutId: id, wave: 1, hosts: 1 });
    expect(lines.find((l) => l.msg === 'rollout-host-issued')).toMatchObject({ rolloutId: id, wave: 1, hosts: 1 });
    // Nothing is logged twice.
    await log.flush();
    expect(lines.length).toBe(seen.length);
  });

  it("counts a wave's issued hosts in one info line, and lists each host at debug", async () => {
    ctl = await testController();
    const names = ['web-1', 'web-2', 'web-3'];
    for (const name of names) await registeredHost(ctl, name);
    const info: Array<Record<string, unknown>> = [];
    const debug: Array<Record<string, unknown>> = [];
    const infoLog = new EventLog(ctl.store, pino({ level: 'info' }, { write: (line: string) => void info.push(JSON.parse(line) as Record<string, unknown>) }));
    const debugLog = new EventLog(ctl.store, pino({ level: 'debug' }, { write: (line: string) => void debug.push(JSON.parse(line) as Record<string, unknown>) }));
    const release = { name: 'v2', hosts: names.map((host) => ({ host, storePath: storePath(`nixos-system-${host}`, 'b') })) };
    expect((await ctl.operator('/v1/releases', { method: 'POST', body: JSON.stringify(release) })).status).toBe(201);
    const started = await ctl.operator('/v1/rollouts', { method: 'POST', body: JSON.stringify({ release: 'v2', waves: ['100%'] }) });
    expect(started.status).toBe(201);
    const { id } = (await started.json()) as { id: string };
    await infoLog.flush();
    await debugLog.flush();

    const counted = info.filter((l) => l.msg === 'rollout-host-issued');
    expect(counted).toHaveLength(1);
    expect(counted[0]).toMatchObject({ level: 30, rolloutId: id, wave: 1, hosts: 3 });
    expect(counted[0]).not.toHaveProperty('host');
    const perHost = debug.filter((l) => l.msg === 'rollout-host-issued' && l.level === 20);
    expect(perHost.map((l) => l.host).sort()).toEqual(names);
    expect(perHost[0]).toMatchObject({ rolloutId: id, version: 1, wave: 1 });
  });

  it('reads as one line per entry on a terminal', () => {
    process.env.TZ = 'UTC';
    const line = prettyLine(JSON.stringify({ level: 'info', time: '2030-01-01T12:00:01.234Z', component: 'controller', msg: 'rollout-halted', rolloutId: 'ro-1', reason: '1 host failed' }));
    expect(line).toBe('12:00:01 INFO  controller: rollout-halted  rolloutId=ro-1 reason="1 host failed"\n');
  });
});

describe.each(storeEngines)('the controller log on $name', (engine) => {
  it('logs only what was written after it started, each event once even when flushes overlap', async () => {
    const opened = await engine.open();
    try {
      const { store } = opened;
      const write = (kind: string, rolloutId: string) =>
        store.transaction(async (tx) => {
          await tx.insert(store.t.events).values({ at: 0, kind, actor: 'test', rolloutId, host: null, data: {} });
        });
      await write('rollout-started', 'ro-before');
      const lines: Array<Record<string, unknown>> = [];
      const log = new EventLog(store, pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }));
      await log.flush();
      await write('rollout-started', 'ro-1');
      await write('rollout-succeeded', 'ro-1');
      await Promise.all([log.flush(), log.flush(), log.stop()]);
      expect(lines.map((l) => [l.msg, l.rolloutId])).toEqual([
        ['rollout-started', 'ro-1'],
        ['rollout-succeeded', 'ro-1'],
      ]);
    } finally {
      await opened.dispose();
    }
  });
});
