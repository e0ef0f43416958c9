import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Report } from '../shared/src/protocol.js';
import type { Clock } from '../controller/src/clock.js';
import { openSqliteStore, sqliteWriter } from '../controller/src/db/sqlite-store.js';
import { appendEvents } from '../controller/src/events.js';
import { registerHost } from '../controller/src/hosts/enrollment.js';
import { storeReports } from '../controller/src/reports/store.js';
import { DEFAULT_RETENTION, pruneBatch, type RetentionOptions } from '../controller/src/retention/prune.js';
import type { Cleanup } from './lib/cleanup.js';
import type { Figures } from './lib/results.js';
import { percentile, round } from './lib/stats.js';

const DAY = 24 * 3600_000;
const PHASES: Report['phase'][] = ['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy'];

class FakeClock implements Clock {
  constructor(public ms: number) {}
  now(): number {
    return this.ms;
  }
}

export interface SoakOptions {
  hosts: number;
  days: number;
  /** Deploys per host per day: each is six reports (and their events). */
  deploysPerDay: number;
  cleanup: Cleanup;
  log: (line: string) => void;
}

/**
 * A month (by default) of a fleet's history written with a fake clock, at a realistic rate: per host
 * and day, `deploysPerDay` deploys of six reports, a websocket reconnect (connected + disconnected)
 * and a manifest renewal. Run twice on fresh databases: without pruning, and with the default
 * retention shortened to 7 days (so a month shows the plateau), pruning every simulated hour in the
 * controller's batches. The database size is the file plus its WAL after a checkpoint; SQLite
 * reuses freed pages, so the file stops growing instead of shrinking.
 */
export async function runSoak({ hosts, days, deploysPerDay, cleanup, log }: SoakOptions): Promise<Figures> {
  const figures: Figures = {};
  const retention: RetentionOptions = { ...DEFAULT_RETENTION, reportsDays: 7, eventsDays: 7, webhookDeliveriesDays: 7 };
  for (const pruning of [false, true]) {
    const dir = cleanup.dir(mkdtempSync(join(tmpdir(), 'shoal-bench-soak-')));
    const file = join(dir, 'controller.sqlite');
    const store = openSqliteStore({ database: file });
    const database = sqliteWriter(store);
    const clock = new FakeClock(Date.parse('2030-01-01T00:00:00Z'));
    const names = Array.from({ length: hosts }, (_, i) => `soak-${String(i).padStart(5, '0')}`);
    for (const name of names) await registerHost(store, clock, { name, publicKey: Buffer.alloc(32, 1).toString('base64'), tags: [], actor: 'bench' });
    const seqs = new Map(names.map((n) => [n, 0]));
    const size = () => {
      database.sqlite.pragma('wal_checkpoint(TRUNCATE)');
      const wal = (() => {
        try {
          return statSync(`${file}-wal`).size;
        } catch {
          return 0;
        }
      })();
      return (statSync(file).size + wal) / 1048576;
    };
    const batchMs: number[] = [];
    const sizes: number[] = [];
    const label = pruning ? 'pruned' : 'unpruned';
    const start = clock.ms;
    for (let day = 0; day < days; day++) {
      for (let hour = 0; hour < 24; hour++) {
        const hourStart = start + day * DAY + hour * 3600_000;
        // Each host does its day's work at its own hour (hash of its index), spread over the day.
        for (let i = hour; i < hosts; i += 24) {
          const host = names[i]!;
          clock.ms = hourStart + (i % 3600) * 1000;
          await store.transaction(() =>
            appendEvents(store, [
              { host, at: clock.ms, kind: 'disconnected', actor: `agent:${host}`, data: { mode: 'websocket' } },
              { host, at: clock.ms, kind: 'connected', actor: `agent:${host}`, data: { mode: 'websocket' } },
              { host, at: clock.ms, kind: 'manifest-renewed', actor: 'controller', data: { version: day + 1 } },
            ]),
          );
          for (let d = 0; d < deploysPerDay; d++) {
            const batch = PHASES.map((phase) => {
              const seq = seqs.get(host)! + 1;
              seqs.set(host, seq);
              return {
                seq,
                at: new Date(clock.ms).toISOString(),
                phase,
                manifestVersion: day + 1,
                storePath: `/nix/store/${'b'.repeat(32)}-nixos-system-${host}-${day}`,
                currentSystem: `/nix/store/${'a'.repeat(32)}-nixos-system-${host}-${day}`,
                detail: {},
              } satisfies Report;
            });
            await storeReports(store, clock, host, batch);
          }
        }
        if (pruning) {
          clock.ms = hourStart + 3599_000;
          for (const kind of ['reports', 'events', 'auditEvents', 'webhookDeliveries'] as const) {
            for (;;) {
              const started = performance.now();
              const deleted = await pruneBatch(store, kind, clock.now(), retention);
              batchMs.push(performance.now() - started);
              if (deleted < (retention.batchRows ?? DEFAULT_RETENTION.batchRows)) break;
            }
          }
        }
      }
      sizes.push(size());
      if ((day + 1) % 7 === 0 || day === days - 1) log(`  soak ${label}: day ${day + 1}, ${round(sizes[sizes.length - 1]!, 1)} MB`);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const p = `soak.${hosts}.${label}`;
    figures[`${p}.db_mb_day7`] = round(sizes[Math.min(6, sizes.length - 1)]!, 1);
    figures[`${p}.db_mb_day14`] = round(sizes[Math.min(13, sizes.length - 1)]!, 1);
    figures[`${p}.db_mb_day${days}`] = round(sizes[sizes.length - 1]!, 1);
    const rows = (table: string) => (database.sqlite.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n;
    figures[`${p}.reports_rows`] = rows('reports');
    figures[`${p}.events_rows`] = rows('events');
    if (pruning) {
      figures[`${p}.prune_batch_p99_ms`] = round(percentile(batchMs, 99), 2);
      figures[`${p}.prune_batch_max_ms`] = round(Math.max(...batchMs), 2);
    }
    await store.close();
  }
  return figures;
}
