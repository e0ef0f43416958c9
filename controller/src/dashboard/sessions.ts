import { randomBytes, timingSafeEqual } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import type { OperatorIdentity } from '../auth/operator-tokens.js';
import { scopeAllows } from '../auth/scopes.js';
import type { Clock } from '../clock.js';
import { TtlMap } from '../ttl-map.js';
import type { Store } from '../db/store.js';

export interface DashboardSession {
  id: string;
  operator: OperatorIdentity;
  /** Every form of this session carries it; an action without it is refused. */
  csrf: string;
  createdAt: number;
  lastUsedAt: number;
  /** One message shown on the next page (the result of an action). */
  flash: { kind: 'ok' | 'error'; text: string } | null;
}

export interface SessionLimits {
  idleMs: number;
  maxAgeMs: number;
  maxSessions: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { idleMs: 8 * 3600_000, maxAgeMs: 7 * 24 * 3600_000, maxSessions: 10_000 };

/**
 * Whether this session may do what the operator API route `method path` does, by the same table
 * (auth/scopes.ts): pages show only the actions it may take, and each action is checked again.
 */
export function sessionMay(session: DashboardSession, method: string, apiPath: string): boolean {
  return scopeAllows(session.operator.scope, method, apiPath);
}

export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

export function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * Dashboard sessions, in memory only: a controller restart signs everyone out, which is the
 * price of never writing a browser credential to disk. A session dies with its operator token:
 * every lookup checks that the token it was opened with is still active.
 */
export class DashboardSessions {
  /** Expires at the maximum age; the idle limit is checked on each lookup. */
  private readonly sessions: TtlMap<string, DashboardSession>;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
  ) {
    this.sessions = new TtlMap(clock, limits.maxAgeMs);
  }

  open(operator: OperatorIdentity): DashboardSession {
    this.sessions.sweepExpired();
    if (this.sessions.size >= this.limits.maxSessions) this.sessions.deleteOldest();
    const now = this.clock.now();
    const session: DashboardSession = { id: randomToken(), operator, csrf: randomToken(), createdAt: now, lastUsedAt: now, flash: null };
    this.sessions.set(session.id, session);
    return session;
  }

  async find(id: string | undefined): Promise<DashboardSession | null> {
    if (!id) return null;
    const session = this.sessions.get(id);
    if (!session) return null;
    const now = this.clock.now();
    if (now - session.lastUsedAt > this.limits.idleMs || !(await this.tokenActive(session.operator.id))) {
      this.sessions.delete(id);
      return null;
    }
    session.lastUsedAt = now;
    return session;
  }

  /** Whether the session is still valid, without counting as use (live streams ask this every few seconds). */
  async isOpen(id: string): Promise<boolean> {
    const session = this.sessions.get(id);
    if (!session) return false;
    const lastUsedAt = session.lastUsedAt;
    const open = (await this.find(id)) !== null;
    if (open) session.lastUsedAt = lastUsedAt;
    return open;
  }

  close(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  private async tokenActive(tokenId: string): Promise<boolean> {
    const { operatorTokens } = this.store.t;
    const rows = await this.store.q
      .select({ id: operatorTokens.id })
      .from(operatorTokens)
      .where(and(eq(operatorTokens.id, tokenId), isNull(operatorTokens.revokedAt)))
      .limit(1);
    return rows.length > 0;
  }
}
