import { sql } from 'drizzle-orm';
import type { EventKind } from '../../shared/src/operator-api.js';
import type { Queryable, Store, Tables } from './db/store.js';
import { perHandle } from './db/per-handle.js';
import { chunkedStatement, placeholderRow, rowIndexes } from './db/chunked.js';

export interface NewEvent {
  host: string | null;
  at: number;
  kind: EventKind;
  actor: string;
  rolloutId?: string | null;
  data?: Record<string, unknown>;
}


/** The insert of one event, built once per query handle (db/per-handle.ts): events are written per report. */
const insertEvent = perHandle((q: Queryable, { events }: Tables) =>
  q
    .insert(events)
    .values({
      host: sql.placeholder('host'),
      at: sql.placeholder('at'),
      kind: sql.placeholder('kind'),
      actor: sql.placeholder('actor'),
      rolloutId: sql.placeholder('rolloutId'),
      data: sql.placeholder('data'),
    })
    .prepare('events_insert'),
);

function row(event: NewEvent) {
  return { host: event.host, at: event.at, kind: event.kind, actor: event.actor, rolloutId: event.rolloutId ?? null, data: event.data ?? {} };
}

/**
 * The event log is append-only: nothing in the controller updates or deletes an event. Written in
 * the caller's transaction (`store.q`), so an event stands exactly when what it tells of does.
 */
export async function appendEvent(store: Store, event: NewEvent): Promise<void> {
  await insertEvent(store).execute(row(event));
}

const EVENT_FIELDS = ['host', 'at', 'kind', 'actor', 'rolloutId', 'data'] as const;

const insertEvents = chunkedStatement<ReturnType<typeof row>>(
  'events_insert',
  (q, { events }, size) =>
    q
      .insert(events)
      .values(rowIndexes(size).map((i) => placeholderRow(EVENT_FIELDS, i))),
);

/** Several events at once (a wave's hosts): a few statements per batch, not one per event. */
export async function appendEvents(store: Store, events: readonly NewEvent[]): Promise<void> {
  await insertEvents(store, events.map(row));
}
