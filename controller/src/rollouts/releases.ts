import { asc, count, eq, inArray } from 'drizzle-orm';
import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import type { ReleaseSource } from '../../../shared/src/protocol.js';
import { signStatement, statementPayload, verifyReleaseStatement, type ReleaseBundle, type SystemFacts } from '../../../shared/src/release-statement.js';
import type { CreateReleaseRequest, Release, ReleaseProvenance } from '../../../shared/src/rollout-api.js';
import { iso, type Clock } from '../clock.js';
import type { ReleaseRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { chunkedStatement, placeholderRow, rowIndexes } from '../db/chunked.js';
import { appendEvent } from '../events.js';
import { trustMode, type ReleaseTrust } from '../manifests/statements.js';

export type CreateReleaseOutcome =
  | { ok: true; release: Release }
  | { ok: false; status: 400 | 409; code: 'release-exists' | 'invalid-release' | 'release-not-signed'; message: string; problems: string[] };

/** A release as it is stored: every host with the statement that authorises its system. */
interface SignedRelease {
  name: string;
  description: string;
  /** Free-text source of an unsigned request. */
  source: string | null;
  floor: number;
  keyId: string;
  signedBy: 'ci' | 'controller';
  signedAt: number;
  structuredSource: ReleaseSource | null;
  hosts: Array<{ host: string; storePath: string; statement: string; facts: SystemFacts | null }>;
}

function refused(name: string, problems: string[]): CreateReleaseOutcome {
  return { ok: false, status: 400, code: 'invalid-release', message: `release "${name}" refused: ${problems.join('; ')}`, problems };
}

/**
 * Stores a CI-signed bundle when every statement is signed by a trusted release key and says
 * exactly what its entry says (host, store path, release, floor, source, time). One bad statement
 * refuses the whole bundle, and each one is named: a release is all of CI's word or none of it.
 */
export async function publishBundle(store: Store, clock: Clock, trust: ReleaseTrust, bundle: ReleaseBundle, actor: string): Promise<CreateReleaseOutcome> {
  const problems: string[] = [];
  const keyIds = new Set<string>();
  const stored: SignedRelease['hosts'] = [];
  for (const entry of bundle.hosts) {
    const verified = verifyReleaseStatement(entry.statement, { host: entry.host, storePath: entry.storePath }, trust.keys, nodeEd25519);
    if (!verified.valid) {
      problems.push(`host "${entry.host}": ${verified.reason}: ${verified.message}`);
      continue;
    }
    const { statement: said } = verified;
    const mismatch = [
      said.release !== bundle.name ? `is for release "${said.release}", not "${bundle.name}"` : null,
      said.floor !== bundle.floor ? `has floor ${said.floor}, the bundle ${bundle.floor}` : null,
      JSON.stringify(said.source) !== JSON.stringify(bundle.source) ? `names source ${JSON.stringify(said.source)}, the bundle ${JSON.stringify(bundle.source)}` : null,
      Date.parse(said.createdAt) !== Date.parse(bundle.createdAt) ? `was created ${said.createdAt}, the bundle ${bundle.createdAt}` : null,
    ].filter((m) => m !== null);
    if (mismatch.length > 0) {
      problems.push(`host "${entry.host}": statement-mismatch: release statement ${mismatch.join(', ')}`);
      continue;
    }
    keyIds.add(verified.keyId);
    stored.push({ host: entry.host, storePath: entry.storePath, statement: JSON.stringify(entry.statement), facts: entry.facts });
  }
  if (problems.length > 0) return refused(bundle.name, problems);
  return storeRelease(store, clock, {
    name: bundle.name,
    description: bundle.description,
    source: bundle.source.revision,
    floor: bundle.floor,
    keyId: [...keyIds].join(','),
    signedBy: 'ci',
    signedAt: Date.parse(bundle.createdAt),
    structuredSource: bundle.source,
    hosts: stored,
  }, actor);
}

/**
 * An unsigned release request: accepted only in single-key mode, where the controller signs the
 * statements itself. In two-key mode only CI can say what a host may run.
 */
export async function createUnsignedRelease(store: Store, clock: Clock, trust: ReleaseTrust, request: CreateReleaseRequest, actor: string): Promise<CreateReleaseOutcome> {
  const key = trust.singleKey;
  if (!key) {
    return {
      ok: false,
      status: 400,
      code: 'release-not-signed',
      message: `this controller runs in ${trustMode(trust)} mode: a release must be a bundle signed by a CI release key (shoal release sign, then shoal release publish); unsigned release requests are accepted only in single-key mode`,
      problems: [],
    };
  }
  const now = clock.now();
  const floor = request.floor ?? 0;
  const made = { name: request.name, source: { revision: null, flakeLockHash: null }, createdAt: iso(now) };
  return storeRelease(store, clock, {
    name: request.name,
    description: request.description,
    source: request.source,
    floor,
    keyId: key.keyId,
    signedBy: 'controller',
    signedAt: now,
    structuredSource: null,
    hosts: request.hosts.map((entry) => ({
      ...entry,
      statement: JSON.stringify(signStatement(statementPayload(made, { ...entry, facts: null }, floor), key, nodeEd25519)),
      facts: null,
    })),
  }, actor);
}

const RELEASE_HOST_FIELDS = ['release', 'host', 'storePath', 'statement', 'facts'] as const;

/** A release's hosts, a few statements per thousand (db/chunked.ts): 10,000 single-row inserts would cost seconds of query building. */
const insertReleaseHosts = chunkedStatement<{ release: string; host: string; storePath: string; statement: string | null; facts: SystemFacts | null }>(
  'release_hosts_insert',
  (q, { releaseHosts }, size) =>
    q
      .insert(releaseHosts)
      .values(rowIndexes(size).map((i) => placeholderRow(RELEASE_HOST_FIELDS, i))),
);

/** Validates and stores a release; every offender (unknown host, duplicate) is named, and nothing is written when any exists. */
async function storeRelease(store: Store, clock: Clock, release: SignedRelease, actor: string): Promise<CreateReleaseOutcome> {
  const now = clock.now();
  const { hosts, releases, releaseHosts } = store.t;
  return store.transaction(async (tx): Promise<CreateReleaseOutcome> => {
    if ((await tx.select({ name: releases.name }).from(releases).where(eq(releases.name, release.name)).limit(1)).length > 0) {
      return { ok: false, status: 409, code: 'release-exists', message: `release "${release.name}" already exists; releases are immutable, pick a new name`, problems: [] };
    }
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const { host } of release.hosts) {
      if (seen.has(host)) problems.push(`host "${host}" appears more than once`);
      seen.add(host);
    }
    const names = [...seen];
    const known = new Set<string>();
    for (let i = 0; i < names.length; i += 500) {
      const chunk = names.slice(i, i + 500);
      (await tx.select({ name: hosts.name }).from(hosts).where(inArray(hosts.name, chunk))).forEach((row) => known.add(row.name));
    }
    for (const name of names) if (!known.has(name)) problems.push(`host "${name}" is not known to this controller`);
    if (problems.length > 0) return refused(release.name, problems);
    await tx.insert(releases).values({
      name: release.name,
      description: release.description,
      source: release.source,
      createdAt: now,
      createdBy: actor,
      floor: release.floor,
      keyId: release.keyId,
      signedBy: release.signedBy,
      signedAt: release.signedAt,
      sourceRevision: release.structuredSource?.revision ?? null,
      sourceFlakeLockHash: release.structuredSource?.flakeLockHash ?? null,
    });
    await insertReleaseHosts(
      store,
      release.hosts.map((entry) => ({ release: release.name, host: entry.host, storePath: entry.storePath, statement: entry.statement, facts: entry.facts })),
    );
    await appendEvent(store, {
      host: null,
      at: now,
      kind: 'release-created',
      actor,
      data: { release: release.name, hosts: release.hosts.length, source: release.source, signedBy: release.signedBy, keyId: release.keyId, floor: release.floor },
    });
    return { ok: true, release: (await readRelease(store, release.name))! };
  });
}

function provenance(row: ReleaseRow): ReleaseProvenance {
  const signedBy = row.signedBy === 'ci' || row.signedBy === 'controller' ? row.signedBy : null;
  return {
    signedBy,
    keyId: row.keyId,
    signedAt: row.signedAt === null ? null : iso(row.signedAt),
    floor: row.floor,
    source: signedBy === 'ci' ? { revision: row.sourceRevision, flakeLockHash: row.sourceFlakeLockHash } : null,
  };
}

function releaseOf(row: ReleaseRow, members: Release['hosts']): Release {
  return {
    name: row.name,
    description: row.description,
    source: row.source,
    createdAt: iso(row.createdAt),
    createdBy: row.createdBy,
    provenance: provenance(row),
    hosts: members,
  };
}

/** A release and its hosts, in host order; inside a transaction, as that transaction sees it. */
export async function readRelease(store: Store, name: string): Promise<Release | null> {
  const { releases, releaseHosts } = store.t;
  const [row] = await store.q.select().from(releases).where(eq(releases.name, name)).limit(1);
  if (!row) return null;
  const members = await store.q
    .select({ host: releaseHosts.host, storePath: releaseHosts.storePath })
    .from(releaseHosts)
    .where(eq(releaseHosts.release, name))
    .orderBy(asc(releaseHosts.host));
  return releaseOf(row, members);
}

export async function releaseProvenance(store: Store, name: string): Promise<ReleaseProvenance | null> {
  const { releases } = store.t;
  const [row] = await store.q.select().from(releases).where(eq(releases.name, name)).limit(1);
  return row ? provenance(row) : null;
}

export async function listReleases(store: Store): Promise<Array<Omit<Release, 'hosts'> & { hosts: number }>> {
  const { releases, releaseHosts } = store.t;
  const sizes = new Map(
    (await store.q.select({ release: releaseHosts.release, hosts: count() }).from(releaseHosts).groupBy(releaseHosts.release)).map((row) => [row.release, row.hosts] as const),
  );
  return (await store.q.select().from(releases).orderBy(asc(releases.createdAt))).map((row) => ({ ...releaseOf(row, []), hosts: sizes.get(row.name) ?? 0 }));
}
