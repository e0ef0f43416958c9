import { sql } from 'drizzle-orm';
import type { EventKind } from '../../shared/src/operator-api.js';
import type { Db, Tx } from './db/open.js';
import { prepared, statement } from './db/prepared.js';
import { events } from './db/schema.js';

export interface NewEvent {
  host: string | null;
  at: number;
  kind: EventKind;
  actor: string;
  rolloutId?: string | null;
  data?: Record<string, unknown>;
}

function insertEvent(db: Db | Tx) {
  return prepared(db, 'events.insert', () =>
    db
      .insert(events)
      .values({
        host: sql.placeholder('host'),
        at: sql.placeholder('at'),
        kind: sql.placeholder('kind'),
        actor: sql.placeholder('actor'),
        rolloutId: sql.placeholder('rolloutId'),
        data: sql.placeholder('data'),
      })
      .prepare(),
  );
}

/** The event log is append-only: nothing in the controller updates or deletes an event. */
export function appendEvent(db: Db | Tx, event: NewEvent): void {
  // On the database handle a plain statement (it runs in whatever transaction is open there):
  // events are written per report and per host of a wave, where drizzle's mapping costs more than SQLite.
  if ((db as { $client?: unknown }).$client) {
    statement(db as Db, 'insert into events (host, at, kind, actor, rollout_id, data) values (?, ?, ?, ?, ?, ?)').run(
      event.host,
      event.at,
      event.kind,
      event.actor,
      event.rolloutId ?? null,
      JSON.stringify(event.data ?? {}),
    );
    return;
  }
  insertEvent(db).run({
    host: event.host,
    at: event.at,
    kind: event.kind,
    actor: event.actor,
    rolloutId: event.rolloutId ?? null,
    data: event.data ?? {},
  });
}
