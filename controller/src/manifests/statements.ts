import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import type { Envelope } from '../../../shared/src/envelope.js';
import type { NamedPublicKey, NamedSecretKey } from '../../../shared/src/keys.js';
import { PROTOCOL_VERSION, type ReleaseStatementPayload } from '../../../shared/src/protocol.js';
import { signStatement } from '../../../shared/src/release-statement.js';
import { iso } from '../clock.js';
import { and, eq, isNotNull, sql } from 'drizzle-orm';
import type { Store } from '../db/store.js';
import { chunkedStatement, shared } from '../db/chunked.js';

/**
 * The controller's one trust decision: which release statement (CI's "this host may run this
 * system") an assignment carries. Every path that issues a manifest asks here, so "two-key mode
 * never issues what CI did not authorise" is true in one function, not in five.
 */

export interface ReleaseTrust {
  /** Keys a statement must be signed by: CI's release keys, plus the single key's public half in single-key mode. */
  readonly keys: readonly NamedPublicKey[];
  /** Single-key mode only: the controller signs statements itself (weaker; see the README's "Trust"). */
  readonly singleKey: NamedSecretKey | null;
}

export function releaseTrust(trustedKeys: readonly NamedPublicKey[], singleKey: NamedSecretKey | null): ReleaseTrust {
  const keys = singleKey && !trustedKeys.some((k) => k.keyId === singleKey.keyId) ? [...trustedKeys, singleKey] : [...trustedKeys];
  return { keys, singleKey };
}

export function trustMode(trust: ReleaseTrust): 'single-key' | 'two-key' {
  return trust.singleKey ? 'single-key' : 'two-key';
}

/** A statement an assignment may carry, with what the controller keeps of it. */
export interface Authority {
  envelope: Envelope;
  /** The envelope as JSON text, as stored. */
  text: string;
  floor: number;
}

export type Authorisation = { ok: true; authority: Authority } | { ok: false; reason: string };

/** Release name of statements the controller signs in single-key mode for a path no release names. */
export const ADHOC_RELEASE = 'adhoc';

type Candidate = {
  text: string;
  floor: number;
  at: number;
};

/** Whether any signature of the statement is by a key the controller trusts now (they were verified when stored). */
export function signedByTrustedKey(trust: ReleaseTrust, envelope: Envelope): boolean {
  return envelope.signatures.some((signature) => trust.keys.some((key) => key.keyId === signature.keyid));
}

function firstTrusted(trust: ReleaseTrust, candidates: readonly Candidate[]): Authority | null {
  for (const candidate of candidates) {
    const envelope = JSON.parse(candidate.text) as Envelope;
    if (signedByTrustedKey(trust, envelope)) return { envelope, text: candidate.text, floor: candidate.floor };
  }
  return null;
}

/**
 * The statement to embed in an assignment of `storePath` to `host`: the one of `release` when the
 * caller names one (a rollout), else the stored statement for that host and path with the highest
 * floor (newest first among equals), from releases or from earlier manifests. Statements were
 * verified when stored; here only their key must still be trusted (a key removed from
 * trustedReleaseKeys stops authorising). In single-key mode a path nothing authorises gets a fresh
 * statement at the highest floor known; in two-key mode it gets a refusal.
 *
 * The queries run in the caller's transaction, if any (`store.q`).
 */
export async function authoriseStatement(
  store: Store,
  trust: ReleaseTrust,
  host: string,
  storePath: string,
  options: { now: number; release?: string },
): Promise<Authorisation> {
  if (options.release !== undefined) {
    const found = await releaseStatement(store, trust, options.release, host, storePath);
    if (found) return { ok: true, authority: found };
  }
  const candidates = await store.rows<Candidate>(
    sql`select rh.statement as text, r.floor as floor, coalesce(r.signed_at, r.created_at) as at
        from release_hosts rh join releases r on r.name = rh.release
        where rh.host = ${host} and rh.store_path = ${storePath} and rh.statement is not null`,
  );
  const issued = await store.rows<Candidate>(
    sql`select statement as text, statement_floor as floor, issued_at as at from manifests
        where host = ${host} and store_path = ${storePath} and statement is not null order by version desc limit 1`,
  );
  candidates.push(...issued);
  candidates.sort((a, b) => b.floor - a.floor || b.at - a.at);
  const found = firstTrusted(trust, candidates);
  if (found) return { ok: true, authority: found };
  if (trust.singleKey) return { ok: true, authority: await signAdhoc(store, trust.singleKey, host, storePath, options.now) };
  const stale = candidates.length > 0 ? ' (statements for it are stored, but none is signed by a key in trustedReleaseKeys any more)' : '';
  return { ok: false, reason: `no CI-signed release statement authorises ${storePath} for ${host}${stale}` };
}

/** A statement stored for one host of a release (release_hosts.statement) and the release's floor. */
export interface StoredStatement {
  text: string;
  floor: number;
}

/**
 * What authoriseStatement decides for each of many hosts of one rollout's release, from the
 * release's statement for each host at exactly the path wanted, which the caller read with what
 * else it reads of those hosts (a wave's batch: rollouts/members.ts pendingMembers) instead of
 * a query of its own. `statement` null: the release holds none for that host and path. Only a
 * host whose release statement is missing or no longer trusted is looked up on its own.
 */
export async function authoriseFromRelease(
  store: Store,
  trust: ReleaseTrust,
  wanted: ReadonlyArray<{ host: string; storePath: string; statement: StoredStatement | null }>,
  now: number,
): Promise<Map<string, Authorisation>> {
  const outcome = new Map<string, Authorisation>();
  for (const { host, storePath, statement } of wanted) {
    const authority = statement ? firstTrusted(trust, [{ ...statement, at: 0 }]) : null;
    outcome.set(host, authority ? { ok: true, authority } : await authoriseStatement(store, trust, host, storePath, { now }));
  }
  return outcome;
}

/**
 * A release's stored statement for one host at exactly one path, a statement prepared once
 * (db/chunked.ts, a chunk of one row): a rollback or a withdrawal asks it host by host. A wave's
 * batch reads its statements with its members instead (authoriseFromRelease).
 */
const selectReleaseStatement = chunkedStatement<{ release: string; host: string; storePath: string }, StoredStatement>(
  'release_statement',
  (q, { releaseHosts, releases }) => {
    const returns = { text: releaseHosts.statement, floor: releases.floor };
    const query = q
      .select(returns)
      .from(releaseHosts)
      .innerJoin(releases, eq(releases.name, releaseHosts.release))
      .where(
        and(
          eq(releaseHosts.release, shared('release')),
          eq(releaseHosts.host, shared('host')),
          eq(releaseHosts.storePath, shared('storePath')),
          isNotNull(releaseHosts.statement),
        ),
      );
    return { query, returns };
  },
);

/** The statement `release` holds for `host` at `storePath`, when a trusted key signed it. */
async function releaseStatement(store: Store, trust: ReleaseTrust, release: string, host: string, storePath: string): Promise<Authority | null> {
  const rows = await selectReleaseStatement(store, [{ release, host, storePath }]);
  return firstTrusted(trust, rows.map((row) => ({ ...row, at: 0 })));
}

/** Single-key mode: the controller vouches for the path itself, at the highest floor it knows so no host refuses it as stale. */
async function signAdhoc(store: Store, key: NamedSecretKey, host: string, storePath: string, now: number): Promise<Authority> {
  const [row] = await store.rows<{ floor: number }>(sql`select coalesce(max(floor), 0) as floor from releases`);
  const floor = row?.floor ?? 0;
  const payload: ReleaseStatementPayload = {
    protocol: PROTOCOL_VERSION,
    host,
    storePath,
    release: ADHOC_RELEASE,
    source: { revision: null, flakeLockHash: null },
    createdAt: iso(now),
    floor,
  };
  const envelope = signStatement(payload, key, nodeEd25519);
  return { envelope, text: JSON.stringify(envelope), floor };
}
