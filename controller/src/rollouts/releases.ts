import { asc, count, eq, inArray } from 'drizzle-orm';
import type { CreateReleaseRequest, Release } from '../../../shared/src/rollout-api.js';
import { iso, type Clock } from '../clock.js';
import type { Db, Tx } from '../db/open.js';
import { hosts, releaseHosts, releases } from '../db/schema.js';
import { appendEvent } from '../events.js';

export type CreateReleaseOutcome =
  | { ok: true; release: Release }
  | { ok: false; code: 'release-exists' | 'invalid-release'; message: string; problems: string[] };

/** Validates and stores a release; every offender (unknown host, duplicate) is named, and nothing is written when any exists. */
export function createRelease(db: Db, clock: Clock, request: CreateReleaseRequest, actor: string): CreateReleaseOutcome {
  const now = clock.now();
  return db.transaction((tx): CreateReleaseOutcome => {
    if (tx.select({ name: releases.name }).from(releases).where(eq(releases.name, request.name)).get()) {
      return { ok: false, code: 'release-exists', message: `release "${request.name}" already exists; releases are immutable, pick a new name`, problems: [] };
    }
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const { host } of request.hosts) {
      if (seen.has(host)) problems.push(`host "${host}" appears more than once`);
      seen.add(host);
    }
    const names = [...seen];
    const known = new Set<string>();
    for (let i = 0; i < names.length; i += 500) {
      const chunk = names.slice(i, i + 500);
      tx.select({ name: hosts.name }).from(hosts).where(inArray(hosts.name, chunk)).all().forEach((row) => known.add(row.name));
    }
    for (const name of names) if (!known.has(name)) problems.push(`host "${name}" is not known to this controller`);
    if (problems.length > 0) {
      return { ok: false, code: 'invalid-release', message: `release "${request.name}" refused: ${problems.join('; ')}`, problems };
    }
    tx.insert(releases)
      .values({ name: request.name, description: request.description, source: request.source, createdAt: now, createdBy: actor })
      .run();
    for (const entry of request.hosts) {
      tx.insert(releaseHosts).values({ release: request.name, host: entry.host, storePath: entry.storePath }).run();
    }
    appendEvent(tx, {
      host: null,
      at: now,
      kind: 'release-created',
      actor,
      data: { release: request.name, hosts: request.hosts.length, source: request.source },
    });
    return { ok: true, release: readRelease(tx, request.name)! };
  });
}

export function readRelease(db: Db | Tx, name: string): Release | null {
  const row = db.select().from(releases).where(eq(releases.name, name)).get();
  if (!row) return null;
  const members = db
    .select({ host: releaseHosts.host, storePath: releaseHosts.storePath })
    .from(releaseHosts)
    .where(eq(releaseHosts.release, name))
    .orderBy(asc(releaseHosts.host))
    .all();
  return {
    name: row.name,
    description: row.description,
    source: row.source,
    createdAt: iso(row.createdAt),
    createdBy: row.createdBy,
    hosts: members,
  };
}

export function listReleases(db: Db): Array<Omit<Release, 'hosts'> & { hosts: number }> {
  const sizes = new Map(
    db
      .select({ release: releaseHosts.release, hosts: count() })
      .from(releaseHosts)
      .groupBy(releaseHosts.release)
      .all()
      .map((row) => [row.release, row.hosts] as const),
  );
  return db
    .select()
    .from(releases)
    .orderBy(asc(releases.createdAt))
    .all()
    .map((row) => ({
      name: row.name,
      description: row.description,
      source: row.source,
      createdAt: iso(row.createdAt),
      createdBy: row.createdBy,
      hosts: sizes.get(row.name) ?? 0,
    }));
}
