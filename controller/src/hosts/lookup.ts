import { eq, sql } from 'drizzle-orm';
import { perHandle } from '../db/per-handle.js';
import type { Queryable, Store, Tables } from '../db/store.js';

const publicKeyQuery = perHandle((q: Queryable, { hosts }: Tables) =>
  q.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, sql.placeholder('host'))).prepare('hosts_public_key'),
);

/** The host's enrolled public key (base64), or null for an unknown host. Hot: every agent login. */
export async function hostPublicKey(store: Store, host: string): Promise<string | null> {
  const [row] = await publicKeyQuery(store).execute({ host });
  return row?.publicKey ?? null;
}

export async function hostExists(store: Store, host: string): Promise<boolean> {
  return (await hostPublicKey(store, host)) !== null;
}
