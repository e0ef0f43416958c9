import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { OperatorScope } from '../../../shared/src/operator-api.js';
import type { Clock } from '../clock.js';
import type { Db } from '../db/open.js';
import { prepared } from '../db/prepared.js';
import { operatorTokens } from '../db/schema.js';
import { newId, newSecret, sha256Hex } from '../secrets.js';

export interface OperatorIdentity {
  id: string;
  name: string;
  scope: OperatorScope;
}

export function createOperatorToken(db: Db, clock: Clock, name: string, scope: OperatorScope = 'admin'): { id: string; token: string; scope: OperatorScope } {
  const token = newSecret('shoal_op');
  const id = newId();
  db.insert(operatorTokens).values({ id, name, scope, hash: sha256Hex(token), createdAt: clock.now() }).run();
  return { id, token, scope };
}

export function findOperator(db: Db, token: string): OperatorIdentity | null {
  const row = prepared(db, 'operatorTokens.byHash', () =>
    db
      .select({ id: operatorTokens.id, name: operatorTokens.name, scope: operatorTokens.scope })
      .from(operatorTokens)
      .where(and(eq(operatorTokens.hash, sql.placeholder('hash')), isNull(operatorTokens.revokedAt)))
      .prepare(),
  ).get({ hash: sha256Hex(token) });
  if (!row) return null;
  // An unknown scope (a newer controller's, after a downgrade) grants the least: publishing releases.
  const scope = OperatorScope.safeParse(row.scope);
  return { ...row, scope: scope.success ? scope.data : 'ci' };
}

export function hasActiveOperatorToken(db: Db): boolean {
  return db.select({ id: operatorTokens.id }).from(operatorTokens).where(isNull(operatorTokens.revokedAt)).limit(1).get() !== undefined;
}

export function listOperatorTokens(db: Db) {
  return db
    .select({ id: operatorTokens.id, name: operatorTokens.name, scope: operatorTokens.scope, createdAt: operatorTokens.createdAt, revokedAt: operatorTokens.revokedAt })
    .from(operatorTokens)
    .orderBy(asc(operatorTokens.createdAt), asc(operatorTokens.id))
    .all();
}

/** Returns false when no active token has that id. */
export function revokeOperatorToken(db: Db, clock: Clock, id: string): boolean {
  const result = db
    .update(operatorTokens)
    .set({ revokedAt: clock.now() })
    .where(and(eq(operatorTokens.id, id), isNull(operatorTokens.revokedAt)))
    .run();
  return result.changes > 0;
}
