import { and, eq, isNull, ne, or } from 'drizzle-orm';
import type { Store } from '../db/store.js';

/** Remembers the version an agent said it runs; an agent that says nothing (older than this field) leaves it alone. */
export async function recordAgentVersion(store: Store, host: string, version: string | undefined): Promise<void> {
  if (version === undefined) return;
  const { hosts } = store.t;
  // Only when it changed: every login would otherwise be a write.
  await store.transaction(async (tx) => {
    await tx
      .update(hosts)
      .set({ agentVersion: version })
      .where(and(eq(hosts.name, host), or(isNull(hosts.agentVersion), ne(hosts.agentVersion, version))));
  });
}
