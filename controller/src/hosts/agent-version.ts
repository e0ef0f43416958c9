import { and, eq, isNull, ne, or, sql } from 'drizzle-orm';
import { perHandle } from '../db/per-handle.js';
import type { Queryable, Store, Tables } from '../db/store.js';

const recordedVersion = perHandle((q: Queryable, { hosts }: Tables) =>
  q.select({ agentVersion: hosts.agentVersion }).from(hosts).where(eq(hosts.name, sql.placeholder('host'))).prepare('hosts_agent_version'),
);

/** Remembers the version an agent said it runs; an agent that says nothing (older than this field) leaves it alone. */
export async function recordAgentVersion(store: Store, host: string, version: string | undefined): Promise<void> {
  if (version === undefined) return;
  // Every login says it; a write transaction only when it changed (an upgrade), not per login.
  const [row] = await recordedVersion(store).execute({ host });
  if (!row || row.agentVersion === version) return;
  const { hosts } = store.t;
  await store.transaction(async (tx) => {
    await tx
      .update(hosts)
      .set({ agentVersion: version })
      .where(and(eq(hosts.name, host), or(isNull(hosts.agentVersion), ne(hosts.agentVersion, version))));
  });
}
