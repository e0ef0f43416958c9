import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { DEFAULT_ADMISSION } from './auth/admission.js';
import { databaseProblem, urlPassword } from './database-setting.js';
import { parseListenAddress } from './listen-address.js';
import { DEFAULT_RETENTION } from './retention/prune.js';
import { cidrProblem } from './webhooks/destination.js';
import { readJsonConfig } from '../../shared/src/config-file.js';
import { parsePublicKey } from '../../shared/src/keys.js';

/**
 * The controller's configuration file, the one the NixOS module renders. One strict schema with
 * units in names; `check-config` runs the same parse at build time, so a typo fails the build.
 * Flags given to `serve` replace whole fields before validation.
 */

const AbsolutePath = z.string().refine((p) => isAbsolute(p), { message: 'must be an absolute path' });
const Seconds = z.number().int('must be a whole number of seconds').positive('must be at least 1');

const ListenAddress = z.string().superRefine((text, ctx) => {
  try {
    parseListenAddress(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message.replace(/^--listen /, '') });
  }
});

/** A SQLite file or a postgres:// URL (database-setting.ts). */
const DatabaseText = z.string().superRefine((text, ctx) => {
  const problem = databaseProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const PublicKeyText = z.string().superRefine((text, ctx) => {
  try {
    parsePublicKey(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

/** A binary cache the controller reads (closure diffs, the rollout preflight) and the keys its narinfos must be signed by. */
const BinaryCache = z.strictObject({
  url: z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' }),
  /** Nix cache keys ("name:base64"): the ones the hosts trust (their trustedPublicKeys). */
  publicKeys: z.array(PublicKeyText).min(1, 'needs at least one Nix cache public key "name:base64" (what the hosts list in trustedPublicKeys)'),
});

const Count = z.number().int('must be a whole number').positive('must be at least 1');
const Days = z.number().int('must be a whole number of days').positive('must be at least 1').nullable();

/** "10.0.0.0/8", "fd00::/8", "192.0.2.7" (a single address): parsed once here, checked again where used. */
const Cidr = z.string().superRefine((text, ctx) => {
  const problem = cidrProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Caps on what clients that have not proved a host may make the controller hold (see auth/admission.ts). */
const Admission = z
  .strictObject({
    pendingChallenges: Count.default(DEFAULT_ADMISSION.pendingChallenges.total),
    pendingChallengesPerAddress: Count.default(DEFAULT_ADMISSION.pendingChallenges.perAddress),
    unauthenticatedConnections: Count.default(DEFAULT_ADMISSION.unauthenticatedSockets.total),
    unauthenticatedConnectionsPerAddress: Count.default(DEFAULT_ADMISSION.unauthenticatedSockets.perAddress),
  })
  .prefault({});

/** Where webhooks may deliver. Loopback, link-local (cloud metadata) and private ranges are refused unless allowed here. */
const Webhooks = z
  .strictObject({
    allowPrivateNetworks: z.boolean().default(false),
    allowedNetworks: z.array(Cidr).default([]),
  })
  .prefault({});

/** How long history is kept; null keeps it forever. Pruned in small batches on a timer. */
const Retention = z
  .strictObject({
    reportsDays: Days.default(DEFAULT_RETENTION.reportsDays),
    /** Events neither caused by a rollout nor made by an operator (connected, report, renewal …). */
    eventsDays: Days.default(DEFAULT_RETENTION.eventsDays),
    /** The audit log: events a rollout caused (kept while it is unfinished) or an operator made. */
    auditEventsDays: Days.default(DEFAULT_RETENTION.auditEventsDays),
    /** Delivered and given-up webhook deliveries; pending ones are never pruned. */
    webhookDeliveriesDays: Days.default(DEFAULT_RETENTION.webhookDeliveriesDays),
    /** Superseded manifests; each host's current one and any a rollout may still need are kept. */
    manifestsDays: Days.default(DEFAULT_RETENTION.manifestsDays),
    pruneIntervalSeconds: Seconds.default(DEFAULT_RETENTION.pruneIntervalMs / 1000),
  })
  .prefault({});

export const ControllerConfig = z
  .strictObject({
    listen: ListenAddress.default('127.0.0.1:8420'),
    stateDir: AbsolutePath,
    /**
     * A SQLite file (absolute path) or a postgres:// / postgresql:// URL (several replicas share
     * one PostgreSQL database). null: `db`, else controller.sqlite in stateDir.
     */
    database: DatabaseText.nullable().default(null),
    /** The PostgreSQL password, read at start from this file (its trailing newline dropped) instead of standing in the URL. */
    databasePasswordFile: AbsolutePath.nullable().default(null),
    /** The SQLite file under its older name; `database` replaces it. */
    db: AbsolutePath.nullable().default(null),
    /** Signs assignments (manifests): "this host, this system, now". Every agent lists its public half in trustedControllerKeys. */
    controllerKeyFile: AbsolutePath,
    /**
     * Single-key mode: the controller also holds a release key and signs release statements itself.
     * Weaker: whoever takes over the controller can then authorise any system. null (default) is
     * two-key mode, where only CI holds release keys and the controller cannot load one.
     */
    singleKeyReleaseKeyFile: AbsolutePath.nullable().default(null),
    /** CI's release public keys ("name:base64"): published bundles must verify under one of them. */
    trustedReleaseKeys: z.array(PublicKeyText).default([]),
    manifestTtlSeconds: Seconds.default(24 * 3600),
    renewCheckSeconds: Seconds.default(60),
    pollIntervalSeconds: Seconds.default(30),
    /** A file holding the bearer token /metrics then requires; null: /metrics is open on the listen address. */
    metricsTokenFile: AbsolutePath.nullable().default(null),
    /** Where agents and operators reach the controller when that differs from `listen` (behind a proxy). */
    publicUrl: z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' }).nullable().default(null),
    /** Binary caches read for closure diffs and the rollout preflight, in order; [] turns both off. */
    caches: z.array(BinaryCache).default([]),
    /** Narinfo requests in flight at once, over all caches. */
    cacheConcurrency: z.number().int().min(1).max(512).default(32),
    /** How long one narinfo request may take. */
    cacheTimeoutSeconds: Seconds.default(10),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    admission: Admission,
    webhooks: Webhooks,
    retention: Retention,
    /** The fleet reboot lock: at most maxConcurrent hosts rebooting at once; a lease of a host that never reports back ends after leaseSeconds. */
    reboots: z
      .strictObject({
        maxConcurrent: z.number().int().positive().default(1),
        leaseSeconds: Seconds.default(1800),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    if (config.db !== null && config.database !== null) {
      ctx.addIssue({ code: 'custom', path: ['db'], message: 'is the older name of database, and both are set: keep only database' });
    }
    const database = config.database ?? config.db;
    const postgres = database !== null && !database.startsWith('/');
    if (config.databasePasswordFile !== null && !postgres) {
      ctx.addIssue({
        code: 'custom',
        path: ['databasePasswordFile'],
        message: `applies to a PostgreSQL database only, and database is a SQLite file (${database ?? 'controller.sqlite in stateDir'}): remove it, or set database to a postgres:// URL`,
      });
    }
    if (config.databasePasswordFile !== null && postgres && urlPassword(database) !== '') {
      ctx.addIssue({
        code: 'custom',
        path: ['databasePasswordFile'],
        message: 'is set and the database URL carries a password too: remove the password from the URL (postgres://USER@HOST/DATABASE) and keep it in the file only',
      });
    }
    if (config.singleKeyReleaseKeyFile === null && config.trustedReleaseKeys.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['trustedReleaseKeys'],
        message:
          'two-key mode (no singleKeyReleaseKeyFile) needs at least one trusted release key: list CI\'s public release key(s) "name:base64" (or pass --trusted-release-key KEY), or set singleKeyReleaseKeyFile for the weaker single-key mode',
      });
    }
  });
export type ControllerConfig = z.infer<typeof ControllerConfig>;

export type ControllerConfigResult = { ok: true; config: ControllerConfig } | { ok: false; message: string };

/** Fields of earlier versions, so an old file says what to write instead of only "unknown field". */
const REPLACED: Record<string, string> = {
  releaseKeyFile:
    'no longer exists: the controller key that signs assignments is controllerKeyFile; release statements are signed by CI (trustedReleaseKeys), or by singleKeyReleaseKeyFile in single-key mode',
};

/** "config FILE: a: message; b: unknown field" — each problem names its field. */
function formatIssues(source: string, issues: readonly z.core.$ZodIssue[]): string {
  const parts = issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${path ? `${path}.` : ''}${key}: ${REPLACED[key] ?? 'unknown field'}`).join('; ');
    }
    // zod 4 leaves `input` out of issues: a fraction failing .int() looks like a missing field but for its message.
    if (issue.code === 'invalid_type' && issue.input === undefined && /received undefined$/.test(issue.message)) return `${path}: is required`;
    return `${path || '(top level)'}: ${issue.message.replace(/^Invalid input: /, '')}`;
  });
  return `config ${source}: ${parts.join('; ')}`;
}

/** Overrides (from flags) replace fields of the file; undefined means "not given". */
export function parseControllerConfig(raw: unknown, source: string, overrides: Record<string, unknown> = {}): ControllerConfigResult {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, message: `config ${source}: must be a JSON object` };
  const merged: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    // A flag for one field of a section (--max-concurrent-reboots) keeps the file's other fields of it.
    merged[key] = isObject(value) && isObject(merged[key]) ? { ...merged[key], ...value } : value;
  }
  const result = ControllerConfig.safeParse(merged);
  return result.success ? { ok: true, config: result.data } : { ok: false, message: formatIssues(source, result.error.issues) };
}

export async function loadControllerConfig(file: string | undefined, overrides: Record<string, unknown> = {}): Promise<ControllerConfigResult> {
  if (file === undefined) return parseControllerConfig({}, '(command line)', overrides);
  const read = await readJsonConfig(file);
  if (!read.ok) return read;
  return parseControllerConfig(read.raw, file, overrides);
}
