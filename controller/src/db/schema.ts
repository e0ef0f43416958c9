import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import type { Action, Phase } from '../../../shared/src/protocol.js';
import type { RebootPolicy } from '../../../shared/src/reboot.js';
import type { MaintenanceWindow } from '../../../shared/src/windows.js';
import type { RolloutHostState, RolloutRollbackState, RolloutState, RolloutWavePhase } from '../../../shared/src/rollout-api.js';
import type { WebhookDeliveryState } from '../../../shared/src/webhook-api.js';

// Times are integer milliseconds since the epoch: cheap to compare in SQL (renewal scans by expiry),
// converted to ISO strings only at the API boundary. This file imports nothing but drizzle at run time
// (the shared enums only as types, erased) so that drizzle-kit can load it on its own.

export const hosts = sqliteTable('hosts', {
  name: text('name').primaryKey(),
  /** Raw Ed25519 public key, base64 (32 bytes). */
  publicKey: text('public_key').notNull(),
  tags: text('tags', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
  enrolledAt: integer('enrolled_at'),
  lastSeenAt: integer('last_seen_at'),
  /**
   * The replica holding this host's websocket or long-poll, or serving its polls, and how
   * (hosts/shared-presence.ts): read by the other replicas while that replica's heartbeat is fresh.
   */
  connectedReplica: text('connected_replica'),
  connectionMode: text('connection_mode').$type<'websocket' | 'polling'>(),
  currentSystem: text('current_system'),
  phase: text('phase').$type<Phase>(),
  reportedVersion: integer('reported_version'),
  lastError: text('last_error'),
  /** Highest report seq stored; the host's status columns come from that report. */
  lastReportSeq: integer('last_report_seq'),
  /**
   * The desired state: a pointer to the host's current manifest, so that listing and renewal need
   * no max() scans. Always the highest version taken for the host, and the next manifest gets the
   * one above it. A restore can leave it pointing at no manifest: the agent logged in having
   * accepted a version this controller never saw (hosts/watermark.ts), and nothing is desired until
   * an operator sets something.
   */
  desiredVersion: integer('desired_version'),
  /** What the agent said its version was when it last authenticated. */
  agentVersion: text('agent_version'),
  /** Paused by an operator: rollouts leave it waiting in its wave, and setting its desired state needs force. */
  paused: integer('paused', { mode: 'boolean' }).notNull().default(false),
  /** Reboot policy set for this host (overrides its tags'); null: inherit (shared/src/reboot-settings.ts). */
  rebootPolicy: text('reboot_policy').$type<RebootPolicy>(),
  /** Maintenance windows set for this host (overrides its tags'; [] is always open); null: inherit. */
  maintenanceWindows: text('maintenance_windows', { mode: 'json' }).$type<MaintenanceWindow[]>(),
});

export const manifests = sqliteTable(
  'manifests',
  {
    host: text('host')
      .notNull()
      .references(() => hosts.name, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    storePath: text('store_path').notNull(),
    action: text('action').$type<Action>().notNull(),
    rolloutId: text('rollout_id'),
    issuedAt: integer('issued_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    /** The DSSE envelope exactly as sent to agents (JSON text). */
    envelope: text('envelope').notNull(),
    /**
     * The release statement the assignment carries (DSSE envelope, JSON text) and its floor: kept
     * so renewals re-sign the same authority and a rollback can find what authorised a system.
     * null only for manifests issued before statements existed.
     */
    statement: text('statement'),
    statementFloor: integer('statement_floor'),
  },
  // issued_at: retention prunes superseded manifests from the oldest end without scanning.
  (t) => [primaryKey({ columns: [t.host, t.version] }), index('manifests_issued_at').on(t.issuedAt)],
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
  // received_at: retention prunes from the oldest end without scanning.
  (t) => [primaryKey({ columns: [t.host, t.seq] }), index('reports_received_at').on(t.receivedAt)],
);

export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    host: text('host').references(() => hosts.name, { onDelete: 'cascade' }),
    at: integer('at').notNull(),
    kind: text('kind').notNull(),
    actor: text('actor').notNull(),
    /** Set on every event a rollout caused, so its audit log is one indexed scan. */
    rolloutId: text('rollout_id'),
    data: text('data', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
  },
  (t) => [
    index('events_host_id').on(t.host, t.id),
    // Only a rollout's events: a wave's reports, most of the events it logs, belong to none and are not written into it.
    index('events_rollout_id')
      .on(t.rolloutId, t.id)
      .where(sql`${t.rolloutId} is not null`),
    index('events_at').on(t.at),
  ],
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
    /** What the token may do (OperatorScope: read, deploy, admin, ci; see auth/scopes.ts). */
    scope: text('scope').notNull().default('admin'),
    createdAt: integer('created_at').notNull(),
    revokedAt: integer('revoked_at'),
  },
  (t) => [uniqueIndex('operator_tokens_hash').on(t.hash)],
);

/**
 * Hosts this controller does not know that logged in with a valid signature under the key they
 * presented (an enrolled host after the database was lost, or a machine not yet registered), one
 * row per (name, key), so that an operator can adopt one by its fingerprint. Bounded in number
 * (hosts/unknown.ts): anyone can make a key.
 */
export const unknownHosts = sqliteTable(
  'unknown_hosts',
  {
    name: text('name').notNull(),
    publicKey: text('public_key').notNull(),
    firstSeenAt: integer('first_seen_at').notNull(),
    lastSeenAt: integer('last_seen_at').notNull(),
    attempts: integer('attempts').notNull().default(1),
    /** The watermark the agent reported (null: it did not say). */
    highestVersion: integer('highest_version'),
    highestFloor: integer('highest_floor'),
  },
  (t) => [primaryKey({ columns: [t.name, t.publicKey] }), index('unknown_hosts_last_seen').on(t.lastSeenAt)],
);

export type HostRow = typeof hosts.$inferSelect;
export type ManifestRow = typeof manifests.$inferSelect;
export type EventRow = typeof events.$inferSelect;

// ---- Releases and rollouts -----------------------------------------------------------------

export const releases = sqliteTable('releases', {
  name: text('name').primaryKey(),
  description: text('description').notNull(),
  /** Free text of an unsigned (single-key) release; signed releases have sourceRevision / sourceFlakeLockHash. */
  source: text('source'),
  createdAt: integer('created_at').notNull(),
  createdBy: text('created_by').notNull(),
  /** The security floor every statement of the release carries. */
  floor: integer('floor').notNull().default(0),
  /** Key id that signed the statements; null for releases stored before statements existed. */
  keyId: text('key_id'),
  /** 'ci' (a published bundle) or 'controller' (single-key mode signed it); null: before statements existed. */
  signedBy: text('signed_by'),
  /** The createdAt the statements carry (when CI made the release). */
  signedAt: integer('signed_at'),
  sourceRevision: text('source_revision'),
  sourceFlakeLockHash: text('source_flake_lock_hash'),
});

export const releaseHosts = sqliteTable(
  'release_hosts',
  {
    release: text('release')
      .notNull()
      .references(() => releases.name, { onDelete: 'cascade' }),
    host: text('host')
      .notNull()
      .references(() => hosts.name, { onDelete: 'cascade' }),
    storePath: text('store_path').notNull(),
    /** The host's release statement (DSSE envelope, JSON text), verified when the release was stored. */
    statement: text('statement'),
    /** SystemFacts of the store path as CI measured them (closure size, kernel, …); null when not given. */
    facts: text('facts', { mode: 'json' }).$type<Record<string, unknown>>(),
  },
  (t) => [primaryKey({ columns: [t.release, t.host] }), index('release_hosts_host_store_path').on(t.host, t.storePath)],
);

/**
 * A rollout is a state machine persisted here and advanced only inside transactions, so a
 * controller killed at any instant resumes from exactly this row: the wave, whether it bakes and
 * since when, whether it waits for approval.
 */
export const rollouts = sqliteTable(
  'rollouts',
  {
    id: text('id').primaryKey(),
    release: text('release')
      .notNull()
      .references(() => releases.name),
    /** The validated RolloutSpec and the plan computed at start (JSON). */
    spec: text('spec', { mode: 'json' }).notNull(),
    plan: text('plan', { mode: 'json' }).notNull(),
    state: text('state').$type<RolloutState>().notNull(),
    waveIndex: integer('wave_index').notNull(),
    wavePhase: text('wave_phase').$type<RolloutWavePhase>().notNull(),
    waveStartedAt: integer('wave_started_at'),
    bakeStartedAt: integer('bake_started_at'),
    pausedAt: integer('paused_at'),
    /** Highest wave index an operator approved. */
    approvedThrough: integer('approved_through').notNull().default(-1),
    reason: text('reason'),
    createdAt: integer('created_at').notNull(),
    createdBy: text('created_by').notNull(),
    updatedAt: integer('updated_at').notNull(),
    finishedAt: integer('finished_at'),
    /** The rollout this one retries: it re-issues that one's failed and never-reached hosts. */
    retryOf: text('retry_of'),
  },
  (t) => [index('rollouts_state').on(t.state)],
);

export const rolloutHosts = sqliteTable(
  'rollout_hosts',
  {
    rolloutId: text('rollout_id')
      .notNull()
      .references(() => rollouts.id, { onDelete: 'cascade' }),
    host: text('host')
      .notNull()
      .references(() => hosts.name, { onDelete: 'cascade' }),
    wave: integer('wave').notNull(),
    /** Position in the plan, so hosts inside a wave are issued in plan order. */
    position: integer('position').notNull(),
    targetPath: text('target_path').notNull(),
    /** What the host ran when its manifest was issued: where a rollback sends it. */
    previousSystem: text('previous_system'),
    state: text('state').$type<RolloutHostState>().notNull(),
    manifestVersion: integer('manifest_version'),
    issuedAt: integer('issued_at'),
    acceptedAt: integer('accepted_at'),
    finishedAt: integer('finished_at'),
    reason: text('reason'),
    /** The rollback of this host, when the rollout rolls back. */
    rollbackState: text('rollback_state').$type<RolloutRollbackState>(),
    rollbackVersion: integer('rollback_version'),
    rollbackIssuedAt: integer('rollback_issued_at'),
  },
  (t) => [
    primaryKey({ columns: [t.rolloutId, t.host] }),
    // Every row, though manifest_version stays NULL until a member is issued: it is also the only index
    // by host alone (a host's rollouts when it is removed or paused or a rollout starts; the cascade of
    // a host's deletion). test/controller/db/index-plans.test.ts shows each lookup using its index.
    index('rollout_hosts_host_version').on(t.host, t.manifestVersion),
    // Only members a rollback was issued to: inserting a rollout's members and moving them through a
    // wave (PostgreSQL writes an entry into every index a row qualifies for on each update) skip it.
    index('rollout_hosts_host_rollback_version')
      .on(t.host, t.rollbackVersion)
      .where(sql`${t.rollbackVersion} is not null`),
    // A wave's pending (or in-flight, or healthy) members in plan order, without reading the rest
    // of a 10,000-host rollout and sorting it for every batch of a wave.
    index('rollout_hosts_wave_state_position').on(t.rolloutId, t.wave, t.state, t.position),
    // Covers the engine's per-state member counts, read on every tick: an index scan, no table.
    index('rollout_hosts_counts').on(t.rolloutId, t.wave, t.state, t.finishedAt),
  ],
);

export type ReleaseRow = typeof releases.$inferSelect;
export type RolloutRow = typeof rollouts.$inferSelect;
export type RolloutHostRow = typeof rolloutHosts.$inferSelect;

// ---- Webhooks ------------------------------------------------------------------------------

export const webhooks = sqliteTable('webhooks', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  /** Kept in clear: the controller needs it to sign every delivery (HMAC-SHA256). */
  secret: text('secret').notNull(),
  /** Event types delivered to this endpoint (JSON array). */
  events: text('events', { mode: 'json' }).$type<string[]>().notNull(),
  description: text('description').notNull().default(''),
  /** Highest events.id already turned into deliveries: the durable cursor of this endpoint. */
  cursorEventId: integer('cursor_event_id').notNull(),
  createdAt: integer('created_at').notNull(),
  createdBy: text('created_by').notNull(),
  /** Set when the dispatcher gave the endpoint up as dead (nothing is sent or queued until a test succeeds). */
  deadSince: integer('dead_since'),
  deadReason: text('dead_reason'),
});

export const webhookDeliveries = sqliteTable(
  'webhook_deliveries',
  {
    id: text('id').primaryKey(),
    webhookId: text('webhook_id')
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    eventId: integer('event_id').notNull(),
    type: text('type').notNull(),
    /** The body exactly as signed and sent. */
    payload: text('payload').notNull(),
    /** failed: gave up after the last attempt. */
    state: text('state').$type<WebhookDeliveryState>().notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: integer('next_attempt_at').notNull(),
    lastAttemptAt: integer('last_attempt_at'),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    deliveredAt: integer('delivered_at'),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_webhook_event').on(t.webhookId, t.eventId),
    index('webhook_deliveries_webhook_state').on(t.webhookId, t.state, t.eventId),
    index('webhook_deliveries_created_at').on(t.createdAt),
  ],
);

export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;

/**
 * The fleet reboot lock: a host holds a lease from the controller's grant until it reports a
 * terminal phase for that manifest (or the lease expires, for a host that never came back).
 * At most reboots.maxConcurrent leases exist at once.
 */
export const rebootLeases = sqliteTable('reboot_leases', {
  host: text('host')
    .primaryKey()
    .references(() => hosts.name, { onDelete: 'cascade' }),
  manifestVersion: integer('manifest_version').notNull(),
  grantedAt: integer('granted_at').notNull(),
});

/**
 * Settings per tag: reboot policy and maintenance windows for every host with the tag, and the
 * tag's reboot lock (at most maxRebooting of its hosts rebooting at once). A row exists once an
 * operator set something; null columns are not set.
 */
export const tagSettings = sqliteTable('tag_settings', {
  tag: text('tag').primaryKey(),
  rebootPolicy: text('reboot_policy').$type<RebootPolicy>(),
  maintenanceWindows: text('maintenance_windows', { mode: 'json' }).$type<MaintenanceWindow[]>(),
  maxRebooting: integer('max_rebooting'),
  updatedAt: integer('updated_at').notNull(),
  updatedBy: text('updated_by').notNull(),
});
export type TagSettingsRow = typeof tagSettings.$inferSelect;

/**
 * Agent sessions (auth/sessions.ts), in the database so that any replica accepts a session another
 * one issued. Only the token's sha256 is stored: a leaked database lets no one speak for a host.
 * Removing a host deletes its sessions with it.
 */
export const agentSessions = sqliteTable(
  'agent_sessions',
  {
    tokenHash: text('token_hash').primaryKey(),
    host: text('host')
      .notNull()
      .references(() => hosts.name, { onDelete: 'cascade' }),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('agent_sessions_host').on(t.host), index('agent_sessions_expires_at').on(t.expiresAt)],
);

/**
 * Pending login challenges (auth/challenges.ts): a nonce asked for on one replica may be answered
 * on another. Single use: answering deletes the row, and only the request whose delete removed it
 * may go on. No foreign key: an unknown host that presents its key gets a nonce too.
 */
export const agentChallenges = sqliteTable(
  'agent_challenges',
  {
    nonce: text('nonce').primaryKey(),
    host: text('host').notNull(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('agent_challenges_expires_at').on(t.expiresAt)],
);

/** Each replica's last heartbeat (hosts/shared-presence.ts): the hosts it claims are connected while it is fresh. */
export const replicaHeartbeats = sqliteTable('replica_heartbeats', {
  replicaId: text('replica_id').primaryKey(),
  seenAt: integer('seen_at').notNull(),
});
