import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import type { Envelope } from '../../../shared/src/envelope.js';
import type { NamedPublicKey, NamedSecretKey } from '../../../shared/src/keys.js';
import { PROTOCOL_VERSION, type ReleaseStatementPayload } from '../../../shared/src/protocol.js';
import { signStatement } from '../../../shared/src/release-statement.js';
import { iso } from '../clock.js';
import type { Db } from '../db/open.js';
import { statement } from '../db/prepared.js';

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

interface Candidate {
  text: string;
  floor: number;
  at: number;
}

/** Whether any signature of the statement is by a key the controller trusts now (they were verified when stored). */
export function signedByTrustedKey(trust: ReleaseTrust, envelope: Envelope): boolean {
  return envelope.signatures.some((signature) => trust.keys.some((key) => key.keyId === signature.keyid));
}

/**
 * The statement to embed in an assignment of `storePath` to `host`: the one of `release` when the
 * caller names one (a rollout), else the stored statement for that host and path with the highest
 * floor (newest first among equals), from releases or from earlier manifests. Statements were
 * verified when stored; here only their key must still be trusted (a key removed from
 * trustedReleaseKeys stops authorising). In single-key mode a path nothing authorises gets a fresh
 * statement at the highest floor known; in two-key mode it gets a refusal.
 *
 * `db` is the database handle: the queries run inside whatever transaction is open on it.
 */
export function authoriseStatement(
  db: Db,
  trust: ReleaseTrust,
  host: string,
  storePath: string,
  options: { now: number; release?: string },
): Authorisation {
  const firstTrusted = (candidates: readonly Candidate[]): Authority | null => {
    for (const candidate of candidates) {
      const envelope = JSON.parse(candidate.text) as Envelope;
      if (signedByTrustedKey(trust, envelope)) return { envelope, text: candidate.text, floor: candidate.floor };
    }
    return null;
  };
  if (options.release !== undefined) {
    const row = statement(
      db,
      `select rh.statement as text, r.floor as floor, coalesce(r.signed_at, r.created_at) as at
       from release_hosts rh join releases r on r.name = rh.release
       where rh.release = ? and rh.host = ? and rh.store_path = ? and rh.statement is not null`,
    ).get(options.release, host, storePath) as Candidate | undefined;
    const found = row ? firstTrusted([row]) : null;
    if (found) return { ok: true, authority: found };
  }
  const candidates = statement(
    db,
    `select rh.statement as text, r.floor as floor, coalesce(r.signed_at, r.created_at) as at
     from release_hosts rh join releases r on r.name = rh.release
     where rh.host = ? and rh.store_path = ? and rh.statement is not null`,
  ).all(host, storePath) as Candidate[];
  const issued = statement(
    db,
    `select statement as text, statement_floor as floor, issued_at as at from manifests
     where host = ? and store_path = ? and statement is not null order by version desc limit 1`,
  ).get(host, storePath) as Candidate | undefined;
  if (issued) candidates.push(issued);
  candidates.sort((a, b) => b.floor - a.floor || b.at - a.at);
  const found = firstTrusted(candidates);
  if (found) return { ok: true, authority: found };
  if (trust.singleKey) return { ok: true, authority: signAdhoc(db, trust.singleKey, host, storePath, options.now) };
  const stale = candidates.length > 0 ? ' (statements for it are stored, but none is signed by a key in trustedReleaseKeys any more)' : '';
  return { ok: false, reason: `no CI-signed release statement authorises ${storePath} for ${host}${stale}` };
}

/** Single-key mode: the controller vouches for the path itself, at the highest floor it knows so no host refuses it as stale. */
function signAdhoc(db: Db, key: NamedSecretKey, host: string, storePath: string, now: number): Authority {
  const floor = (statement(db, 'select coalesce(max(floor), 0) as floor from releases').get() as { floor: number }).floor;
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
