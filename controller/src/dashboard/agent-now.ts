import { inArray } from 'drizzle-orm';
import type { Db } from '../db/open.js';
import { statement } from '../db/prepared.js';
import { hosts } from '../db/schema.js';
import type { AgentNow } from './format.js';

/**
 * What each rollout member's agent last said, for the rollout picture: rebooting, staged (with
 * the opening time of its window, from its latest report), waiting for a reboot grant.
 */
export function agentsNow(db: Db, names: readonly string[]): Map<string, AgentNow> {
  const result = new Map<string, AgentNow>();
  if (names.length === 0) return result;
  const latest = statement(db, 'select body from reports where host = ? order by seq desc limit 1');
  for (let i = 0; i < names.length; i += 500) {
    const rows = db.select({ name: hosts.name, phase: hosts.phase }).from(hosts).where(inArray(hosts.name, names.slice(i, i + 500))).all();
    for (const row of rows) {
      let windowOpensAt: string | null = null;
      if (row.phase === 'staged') {
        const report = latest.get(row.name) as { body: string } | undefined;
        const opens = report ? (JSON.parse(report.body) as { detail?: { windowOpensAt?: unknown } }).detail?.windowOpensAt : undefined;
        windowOpensAt = typeof opens === 'string' ? opens : null;
      }
      result.set(row.name, { phase: row.phase, windowOpensAt });
    }
  }
  return result;
}
