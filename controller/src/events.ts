import type { EventKind } from '../../shared/src/operator-api.js';
import type { Db, Tx } from './db/open.js';
import { events } from './db/schema.js';

export interface NewEvent {
  host: string | null;
  at: number;
  kind: EventKind;
  actor: string;
  rolloutId?: string | null;
  data?: Record<string, unknown>;
}

/** The event log is append-only: nothing in the controller updates or deletes an event. */
export function appendEvent(db: Db | Tx, event: NewEvent): void {
  db.insert(events)
    .values({ host: event.host, at: event.at, kind: event.kind, actor: event.actor, rolloutId: event.rolloutId ?? null, data: event.data ?? {} })
    .run();
}
