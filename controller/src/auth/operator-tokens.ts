import { and, asc, eq, isNull } from 'drizzle-orm';
import { OperatorScope } from '../../../shared/src/operator-api.js';
import type { Clock } from '../clock.js';
import type { Store } from '../db/store.js';
import { newId, newSecret, sha256Hex } from '../secrets.js';

export interface OperatorIdentity {
  id: string;
  name: string;
  scope: OperatorScope;
}

export async function createOperatorToken(store: Store, clock: Clock, name: string, scope: OperatorScope = 'admin'): Promise<{ id: string; token: string; scope: OperatorScope }> {
  const token = newSecret('shoal_op');
  const id = newId();
  await store.transaction(async (tx) => {
    await tx.insert(store.t.operatorTokens).values({ id, name, scope, hash: sha256Hex(token), createdAt: clock.now() });
  });
  return { id, token, scope };
}

export async function findOperator(store: Store, token: string): Promise<OperatorIdentity | null> {
  const { operatorTokens } = store.t;
  const [row] = await store.q
    .select({ id: operatorTokens.id, name: operatorTokens.name, scope: operatorTokens.scope })
    .from(operatorTokens)
    .where(and(eq(operatorTokens.hash, sha256Hex(token)), isNull(operatorTokens.revokedAt)))
    .limit(1);
  if (!row) return null;
  // An unknown scope (a newer controller's, after a downgrade) grants the least: publishing releases.
  const scope = OperatorScope.safeParse(row.scope);
  return { ...row, scope: scope.success ? scope.data : 'ci' };
}

export async function hasActiveOperatorToken(store: Store): Promise<boolean> {
  const { operatorTokens } = store.t;
  const [row] = await store.q.select({ id: operatorTokens.id }).from(operatorTokens).where(isNull(operatorTokens.revokedAt)).limit(1);
  return row !== undefined;
}

export async function listOperatorTokens(store: Store) {
  const { operatorTokens } = store.t;
  return store.q
    .select({ id: operatorTokens.id, name: operatorTokens.name, scope: operatorTokens.scope, createdAt: operatorTokens.createdAt, revokedAt: operatorTokens.revokedAt })
    .from(operatorTokens)
    .orderBy(asc(operatorTokens.createdAt), asc(operatorTokens.id));
}

/** Returns false when no active token has that id. */
export async function revokeOperatorToken(store: Store, clock: Clock, id: string): Promise<boolean> {
  const { operatorTokens } = store.t;
  return store.transaction(async (tx) => {
    const result = await tx
      .update(operatorTokens)
      .set({ revokedAt: clock.now() })
      .where(and(eq(operatorTokens.id, id), isNull(operatorTokens.revokedAt)));
    return store.affected(result) > 0;
  });
}
