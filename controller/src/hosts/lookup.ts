import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/open.js';
import { prepared } from '../db/prepared.js';
import { hosts } from '../db/schema.js';

/** The host's enrolled public key (base64), or null for an unknown host. Hot: every agent login. */
export function hostPublicKey(db: Db, host: string): string | null {
  const row = prepared(db, 'hosts.publicKey', () =>
    db.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, sql.placeholder('host'))).prepare(),
  ).get({ host });
  return row?.publicKey ?? null;
}

export function hostExists(db: Db, host: string): boolean {
  return hostPublicKey(db, host) !== null;
}
