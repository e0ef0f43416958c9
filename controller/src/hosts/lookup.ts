import { eq } from 'drizzle-orm';
import type { Store } from '../db/store.js';

/** The host's enrolled public key (base64), or null for an unknown host. Hot: every agent login. */
export async function hostPublicKey(store: Store, host: string): Promise<string | null> {
  const { hosts } = store.t;
  const [row] = await store.q.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, host)).limit(1);
  return row?.publicKey ?? null;
}

export async function hostExists(store: Store, host: string): Promise<boolean> {
  return (await hostPublicKey(store, host)) !== null;
}
