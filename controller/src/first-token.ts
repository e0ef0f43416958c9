import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createOperatorToken, hasActiveOperatorToken } from './auth/operator-tokens.js';
import type { Clock } from './clock.js';
import type { Db } from './db/open.js';

/**
 * On a fresh controller nobody can call the operator API yet: make one token and leave it where
 * only root (or the service user) can read it. Returns the file written, or null when tokens exist.
 */
export function ensureAdminToken(db: Db, clock: Clock, stateDir: string): string | null {
  if (hasActiveOperatorToken(db)) return null;
  const { token } = createOperatorToken(db, clock, 'admin');
  const file = join(stateDir, 'admin-token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}
