import { desc, eq, inArray } from 'drizzle-orm';
import type { Store } from '../db/store.js';
import type { AgentNow } from './format.js';

/**
 * What each rollout member's agent last said, for the rollout picture: rebooting, staged (with
 * the opening time of its window, from its latest report), waiting for a reboot grant.
 */
export async function agentsNow(store: Store, names: readonly string[]): Promise<Map<string, AgentNow>> {
  const { hosts, reports } = store.t;
  const result = new Map<string, AgentNow>();
  for (let i = 0; i < names.length; i += 500) {
    const rows = await store.q.select({ name: hosts.name, phase: hosts.phase }).from(hosts).where(inArray(hosts.name, names.slice(i, i + 500)));
    for (const row of rows) {
      let windowOpensAt: string | null = null;
      if (row.phase === 'staged') {
        const [report] = await store.q.select({ body: reports.body }).from(reports).where(eq(reports.host, row.name)).orderBy(desc(reports.seq)).limit(1);
        const opens = (report?.body as { detail?: { windowOpensAt?: unknown } } | undefined)?.detail?.windowOpensAt;
        windowOpensAt = typeof opens === 'string' ? opens : null;
      }
      result.set(row.name, { phase: row.phase, windowOpensAt });
    }
  }
  return result;
}
