import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createOperatorToken, hasActiveOperatorToken } from './auth/operator-tokens.js';
import type { Clock } from './clock.js';
import type { Store } from './db/store.js';

/**
 * On a fresh controller nobody can call the operator API yet: make one token and leave it where
 * only root (or the service user) can read it. Returns the file written, or null when tokens exist.
 */
export async function ensureAdminToken(store: Store, clock: Clock, stateDir: string): Promise<string | null> {
  // One transaction: replicas starting together on a fresh database make one token, not one each.
  const token = await store.transaction(async () => ((await hasActiveOperatorToken(store)) ? null : (await createOperatorToken(store, clock, 'admin')).token));
  if (token === null) return null;
  const file = join(stateDir, 'admin-token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}
