import type { Context, MiddlewareHandler } from 'hono';
import { findOperator, type OperatorIdentity } from '../auth/operator-tokens.js';
import { insufficientScopeMessage, scopeAllows } from '../auth/scopes.js';
import type { Store } from '../db/store.js';
import { ApiError } from './errors.js';
import { bearerToken, limitBody } from './request.js';

export type OperatorEnv = { Variables: { operator: OperatorIdentity } };

/** Bearer operator token (looked up by its sha256), then its scope (auth/scopes.ts, the one table); sets c.get('operator'). */
export function operatorAuth(store: Store): MiddlewareHandler<OperatorEnv> {
  return async (c: Context<OperatorEnv>, next) => {
    const token = bearerToken(c);
    if (token === null) throw new ApiError(401, 'missing-token', 'operator API needs "Authorization: Bearer <token>"');
    const operator = token ? await findOperator(store, token) : null;
    if (!operator) throw new ApiError(401, 'invalid-token', 'operator token is not known to this controller or was revoked');
    if (!scopeAllows(operator.scope, c.req.method, c.req.path)) {
      throw new ApiError(403, 'insufficient-scope', insufficientScopeMessage(operator, c.req.method, c.req.path));
    }
    c.set('operator', operator);
    await next();
  };
}

/** What every operator route runs first: authentication, then the body limit. Mount it on explicit paths. */
export function operatorGuard(store: Store, maxBodyBytes: number): MiddlewareHandler<OperatorEnv>[] {
  return [operatorAuth(store), limitBody(maxBodyBytes)];
}
