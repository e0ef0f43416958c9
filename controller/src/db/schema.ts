import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

// Times are integer milliseconds since the epoch: cheap to compare in SQL (renewal scans by expiry),
// converted to ISO strings only at the API boundary. This file imports nothing but drizzle so that
// drizzle-kit can load it on its own.

export const hosts = sqliteTable('hosts', {
  name: text('name').primaryKey(),
  /** Raw Ed25519 public key, base64 (32 bytes). */
  publicKey: text('public_key').notNull(),
  tags: text('tags', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
  enrolledAt: integer('enrolled_at'),
  lastSeenAt: integer('last_seen_at'),
  currentSystem: text('current_system'),
  phase: text('phase'),
  reportedVersion: integer('reported_version'),
  lastError: text('last_error'),
  /** Highest report seq stored; the host's status columns come from that report. */
  lastReportSeq: integer('last_report_seq'),
  /** The latest manifest's version (= the desired state); a pointer so that listing and renewal need no max() scans. */
  desiredVersion: integer('desired_version'),
});

export const manifests = sqliteTable(
  'manifests',
  {
    host: text('host')
      .notNull()
      .references(() => hosts.name, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    storePath: text('store_path').notNull(),
    action: text('action').notNull(),
    rolloutId: text('rollout_id'),
    issuedAt: integer('issued_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    /** The DSSE envelope exactly as sent to agents (JSON text). */
    envelope: text('envelope').notNull(),
  },
  (t) => [primaryKey({ columns: [t.host, t.version] })],
);

export const reports = sqliteTable(
  'reports',
  {
    host: text('host')
      .notNull()
      .references(() => hosts.name, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    receivedAt: integer('received_at').notNull(),
    body: text('body', { mode: 'json' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.host, t.seq] })],
);

export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    host: text('host').references(() => hosts.name, { onDelete: 'cascade' }),
    at: integer('at').notNull(),
    kind: text('kind').notNull(),
    actor: text('actor').notNull(),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index('events_host_id').on(t.host, t.id)],
);

export const enrollmentTokens = sqliteTable(
  'enrollment_tokens',
  {
    id: text('id').primaryKey(),
    /** sha256 hex of the token; the token itself is shown once and never stored. */
    hash: text('hash').notNull(),
    expiresAt: integer('expires_at').notNull(),
    maxUses: integer('max_uses'),
    uses: integer('uses').notNull().default(0),
    tags: text('tags', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
    createdAt: integer('created_at').notNull(),
    revokedAt: integer('revoked_at'),
  },
  (t) => [uniqueIndex('enrollment_tokens_hash').on(t.hash)],
);

export const operatorTokens = sqliteTable(
  'operator_tokens',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    hash: text('hash').notNull(),
    createdAt: integer('created_at').notNull(),
    revokedAt: integer('revoked_at'),
  },
  (t) => [uniqueIndex('operator_tokens_hash').on(t.hash)],
);

export type HostRow = typeof hosts.$inferSelect;
export type ManifestRow = typeof manifests.$inferSelect;
export type EventRow = typeof events.$inferSelect;
