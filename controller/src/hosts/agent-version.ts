import { and, eq, isNull, ne, or } from 'drizzle-orm';
import type { Db } from '../db/open.js';
import { hosts } from '../db/schema.js';

/** Remembers the version an agent said it runs; an agent that says nothing (older than this field) leaves it alone. */
export function recordAgentVersion(db: Db, host: string, version: string | undefined): void {
  if (version === undefined) return;
  // Only when it changed: every login would otherwise be a write.
  db.update(hosts)
    .set({ agentVersion: version })
    .where(and(eq(hosts.name, host), or(isNull(hosts.agentVersion), ne(hosts.agentVersion, version))))
    .run();
}
