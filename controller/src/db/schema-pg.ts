import { toPg } from './pg-from-sqlite.js';
import * as sqlite from './schema.js';

// The PostgreSQL engine's tables (issue 16): each derived from its SQLite definition in schema.ts,
// which stays the one place a schema change is made. Migrations: `npx drizzle-kit generate --config
// drizzle-pg.config.ts` writes controller/drizzle-pg; test/controller/db/schema-parity.test.ts applies
// both engines' migrations and compares what they built. This file exports tables only.

export const hosts = toPg(sqlite.hosts);
export const manifests = toPg(sqlite.manifests);
export const reports = toPg(sqlite.reports);
export const events = toPg(sqlite.events);
export const enrollmentTokens = toPg(sqlite.enrollmentTokens);
export const operatorTokens = toPg(sqlite.operatorTokens);
export const unknownHosts = toPg(sqlite.unknownHosts);
export const releases = toPg(sqlite.releases);
export const releaseHosts = toPg(sqlite.releaseHosts);
export const rollouts = toPg(sqlite.rollouts);
export const rolloutHosts = toPg(sqlite.rolloutHosts);
export const webhooks = toPg(sqlite.webhooks);
export const webhookDeliveries = toPg(sqlite.webhookDeliveries);
export const rebootLeases = toPg(sqlite.rebootLeases);
export const tagSettings = toPg(sqlite.tagSettings);
export const agentSessions = toPg(sqlite.agentSessions);
export const agentChallenges = toPg(sqlite.agentChallenges);
export const replicaHeartbeats = toPg(sqlite.replicaHeartbeats);
