import { createHash } from 'node:crypto';

/**
 * What a live page shows, as the server renders it: fragments (elementId → html) and keyed lists
 * (elementId → ordered [key, html] rows). Rendering must not depend on the clock for text the
 * browser keeps current itself ("15 s ago"), or every render would differ and be sent again.
 */
export interface LiveState {
  parts: Record<string, string>;
  lists?: Record<string, Array<[key: string, html: string]>>;
}

/** What one `update` event carries: only what changed. `order`, when present, is the list's full key order; keys not in it are gone. */
export interface LiveMessage {
  parts?: Record<string, string>;
  lists?: Record<string, { rows: Record<string, string>; order?: string[] }>;
}

/** The message that turns what a client shows (`previous`, or nothing) into `next`; null when nothing changed. */
export function diffLive(previous: LiveState | null, next: LiveState): LiveMessage | null {
  const message: LiveMessage = {};
  const parts = Object.entries(next.parts).filter(([id, html]) => previous?.parts[id] !== html);
  if (parts.length > 0) message.parts = Object.fromEntries(parts);
  for (const [id, rows] of Object.entries(next.lists ?? {})) {
    const before = previous?.lists?.[id] ?? [];
    const beforeHtml = new Map(before);
    const changed = rows.filter(([key, html]) => beforeHtml.get(key) !== html);
    const reordered = previous === null || before.length !== rows.length || rows.some(([key], i) => before[i]![0] !== key);
    if (changed.length === 0 && !reordered) continue;
    message.lists ??= {};
    message.lists[id] = { rows: Object.fromEntries(changed), ...(reordered ? { order: rows.map(([key]) => key) } : {}) };
  }
  return message.parts || message.lists ? message : null;
}

/** A short digest of a state: the page carries it so its live stream can skip re-sending what the page already shows. */
export function liveDigest(state: LiveState): string {
  return createHash('sha256').update(JSON.stringify(state)).digest('base64url').slice(0, 22);
}
