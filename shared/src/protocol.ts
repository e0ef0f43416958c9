import * as z from 'zod';
import { Envelope } from './envelope.js';
import { RebootAssessment } from './reboot.js';
import { ManifestRebootSettings } from './reboot-settings.js';
import { HOST_NAME_RULE, isHostName, isTag, TAG_RULE } from './names.js';
import { storePathProblem } from './store-path.js';
import { AGENT_VERSION_RULE } from './version.js';

/**
 * The wire contract between controller and agent. Both sides import these schemas; every
 * message carries `protocol` so that either side can refuse a peer it does not understand.
 */
export const PROTOCOL_VERSION = 1;
export const Protocol = z.literal(PROTOCOL_VERSION);

/** Assignments: signed online by the controller key ("this host, this system, now"). */
export const MANIFEST_PAYLOAD_TYPE = 'application/vnd.shoal.manifest.v1+json';
/** Release statements: signed offline by a CI release key ("this host may run this system"). Domain-separated from manifests by DSSE's payload type. */
export const RELEASE_STATEMENT_PAYLOAD_TYPE = 'application/vnd.shoal.release-statement.v1+json';

/**
 * The largest step a host accepts between the highest version it accepted and a new one. Without
 * a bound, one manifest at version 2^53 - 1 would leave no version above it and freeze the host.
 * A million leaves room for a controller restored from a backup to skip ahead, and a controller
 * that re-signs every minute would need two years to spend it.
 */
export const MAX_VERSION_STEP = 1_000_000;

export const StorePath = z.string().superRefine((value, ctx) => {
  const problem = storePathProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: `not a Nix store path (${problem})` });
});
export type StorePath = z.infer<typeof StorePath>;

export const HostName = z.string().refine(isHostName, { message: `host name must be ${HOST_NAME_RULE}` });
export type HostName = z.infer<typeof HostName>;

export const Tag = z.string().refine(isTag, { message: `tag must be ${TAG_RULE}` });

export const IsoTime = z.iso.datetime({ offset: true });

export const PublicKeyBase64 = z
  .base64()
  .refine((v) => Buffer.from(v, 'base64').length === 32, { message: 'public key must be 32 bytes, base64' });

/**
 * safe-switch: `test` → health gate → profile + `boot` (default; only a proven system becomes the boot default).
 * switch: plain `switch-to-configuration switch`, still health-gated and rolled back on failure.
 * boot: set profile + `boot`; the host reports that it waits for a reboot.
 * dry-activate: realise and `dry-activate` only; nothing changes.
 */
export const Action = z.enum(['safe-switch', 'switch', 'boot', 'dry-activate']);
export type Action = z.infer<typeof Action>;

/** Where a release's systems were built from. */
export const ReleaseSource = z
  .object({
    /** The git revision CI built (null when built from a dirty tree or outside git). */
    revision: z.string().max(200).nullable(),
    /** SHA-256 (hex) of flake.lock when built from a flake. */
    flakeLockHash: z.string().max(200).nullable(),
  })
  .strict();
export type ReleaseSource = z.infer<typeof ReleaseSource>;

/**
 * What CI signs for every host of a release: "`host` may run `storePath`". `floor` is the
 * release's security floor: once a host accepted a statement with floor F it refuses every
 * statement below F, so a controller cannot move it back to a release CI has retired.
 */
export const ReleaseStatementPayload = z
  .object({
    protocol: Protocol,
    host: HostName,
    storePath: StorePath,
    release: z.string().min(1).max(100),
    source: ReleaseSource,
    createdAt: IsoTime,
    floor: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  })
  .strict();
export type ReleaseStatementPayload = z.infer<typeof ReleaseStatementPayload>;

/**
 * The assignment the controller signs: "`host`, run `storePath`, now". It carries the release
 * statement it relies on (a DSSE envelope signed by CI), which the agent verifies on its own.
 */
export const ManifestPayload = z.object({
  protocol: Protocol,
  host: HostName,
  version: z.number().int().positive(),
  storePath: StorePath,
  action: Action,
  rolloutId: z.string().max(100).nullable(),
  issuedAt: IsoTime,
  expiresAt: IsoTime,
  /** null only from a controller that has no statement; every agent refuses it ('no-release-statement'). */
  statement: Envelope.nullable(),
  /** The reboot policy and windows set on the controller for this host (absent from controllers before them: the agent's own settings apply). */
  reboot: ManifestRebootSettings.optional(),
});
export type ManifestPayload = z.infer<typeof ManifestPayload>;

/**
 * Where an agent stands. The terminal phases of one manifest are healthy, rolled-back, failed,
 * refused, pending-reboot, dry-activated. After a healthy activation the agent keeps checking its
 * health: `degraded` (a check fails now) and `recovered` (all pass again) are such transitions of
 * the system it runs, reported under the manifest it last applied. The phase sets are in phases.ts.
 */
export const Phase = z.enum([
  'accepted',
  'refused',
  'realising',
  'activating',
  'checking',
  'committing',
  'healthy',
  'pending-reboot',
  'dry-activated',
  'rolling-back',
  'rolled-back',
  'failed',
  'reconciled',
  'degraded',
  'recovered',
  /** The new system is the boot default and the host reboots into it; its health gate runs after the reboot. */
  'rebooting',
  /** Realised and ready; waits for its maintenance window to open (detail.windowOpensAt) before activating. */
  'staged',
  /** Needs a reboot and waits for the controller's grant (the fleet reboot lock), or for the controller to be reachable. */
  'awaiting-reboot-grant',
]);
export type Phase = z.infer<typeof Phase>;

/** Why a manifest was refused; sent back so an operator sees it without logging into the host. */
export const RefusalReason = z.enum([
  'malformed',
  'wrong-payload-type',
  'unknown-key',
  'bad-signature',
  'wrong-host',
  'replayed-version',
  'equivocation',
  'version-jump',
  'expired',
  'issued-in-future',
  'lifetime-too-long',
  'invalid-store-path',
  'no-release-statement',
  'statement-malformed',
  'statement-unknown-key',
  'statement-bad-signature',
  'statement-wrong-host',
  'statement-mismatch',
  'below-floor',
  'state-lost',
  'not-a-nixos-system',
  'untrusted-closure',
  /** The agent's state directory is full: it cannot record an activation, so it does not start one (it retries once there is room). */
  'no-space',
]);
export type RefusalReason = z.infer<typeof RefusalReason>;

/** A failed command, shaped like a result: which command, how it ended, and the last lines it printed. */
export const CommandFailure = z.object({
  command: z.string().max(4096),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  outputTail: z.string().max(16 * 1024),
});
export type CommandFailure = z.infer<typeof CommandFailure>;

export const ReportDetail = z
  .object({
    reason: z.string().max(4096).optional(),
    refusal: RefusalReason.optional(),
    failure: CommandFailure.optional(),
    closureBytes: z.number().int().nonnegative().optional(),
    downloadedBytes: z.number().int().nonnegative().optional(),
    durationMs: z.number().nonnegative().optional(),
    previousSystem: StorePath.nullable().optional(),
    /** Sent before activating: whether the new system needs a reboot and whether a live switch is possible. */
    reboot: RebootAssessment.optional(),
    /** When the host's maintenance window opens next (phase staged). */
    windowOpensAt: IsoTime.optional(),
  })
  .strict();
export type ReportDetail = z.infer<typeof ReportDetail>;

export const Report = z.object({
  /** Numbered by the agent from 1, gap-free; the controller stores each (host, seq) once. */
  seq: z.number().int().positive(),
  at: IsoTime,
  phase: Phase,
  manifestVersion: z.number().int().positive().nullable(),
  /** The system the manifest asked for. */
  storePath: StorePath.nullable(),
  /** The system the host runs now (readlink of current-system). */
  currentSystem: StorePath.nullable(),
  detail: ReportDetail.default({}),
});
export type Report = z.infer<typeof Report>;

export const MAX_REPORTS_PER_BATCH = 500;
/**
 * Agents cut batches at this many bytes of JSON, half the controller's 1 MiB body limit, so a
 * backlog of reports with long output tails is never refused whole (and retried forever).
 */
export const MAX_REPORT_BATCH_BYTES = 512 * 1024;

export const ReportBatch = z.object({ protocol: Protocol, reports: z.array(Report).min(1).max(MAX_REPORTS_PER_BATCH) });
export type ReportBatch = z.infer<typeof ReportBatch>;

/** `stored` counts new reports; duplicates are acknowledged but not counted twice. */
export const ReportAck = z.object({ protocol: Protocol, ackedSeqs: z.array(z.number().int()), stored: z.number().int() });
export type ReportAck = z.infer<typeof ReportAck>;

// ---- Enrollment and authentication --------------------------------------------------------

export const EnrollRequest = z.object({
  protocol: Protocol,
  host: HostName,
  publicKey: PublicKeyBase64,
  token: z.string().min(1).max(200),
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({ protocol: Protocol, host: HostName });
export type EnrollResponse = z.infer<typeof EnrollResponse>;

/**
 * What an agent tells the controller about itself when it logs in (all optional, so older agents
 * still log in): its public key, so a controller that does not know the host (its database was
 * lost) can show the key's fingerprint to an operator who may adopt it; and its watermark, the
 * highest manifest version and security floor it accepted, so a controller restored from an older
 * backup issues its next manifest above it instead of versions the host refuses as replays.
 */
export const AgentWatermark = z
  .object({
    highestVersion: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    highestFloor: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    /** The store path of that version: tells a restored controller that its own manifest of the same number is another one. */
    highestStorePath: StorePath.nullable().optional(),
  })
  .strict();
export type AgentWatermark = z.infer<typeof AgentWatermark>;

/** The agent's own version (SHOAL_VERSION), told when it authenticates; optional so older agents still log in. */
export const AgentVersion = z.string().regex(AGENT_VERSION_RULE, 'agent version must be 1 to 64 printable characters');

/** What an agent tells about itself when it logs in (all optional, so older agents still log in). */
export const LoginFacts = { publicKey: PublicKeyBase64.optional(), watermark: AgentWatermark.optional(), agentVersion: AgentVersion.optional() };

/** `publicKey` lets an unknown host get a nonce, so its login can be recorded for adoption. */
export const ChallengeRequest = z.object({ protocol: Protocol, host: HostName, publicKey: PublicKeyBase64.optional() });
export type ChallengeRequest = z.infer<typeof ChallengeRequest>;

export const Challenge = z.object({ protocol: Protocol, nonce: z.string().min(16).max(200), expiresAt: IsoTime });
export type Challenge = z.infer<typeof Challenge>;


export const SessionRequest = z.object({
  protocol: Protocol,
  host: HostName,
  nonce: z.string().min(16).max(200),
  signature: z.base64(),
  ...LoginFacts,
});
export type SessionRequest = z.infer<typeof SessionRequest>;

export const Session = z.object({ protocol: Protocol, token: z.string(), expiresAt: IsoTime });
export type Session = z.infer<typeof Session>;

/**
 * The controller a host means to talk to, as it signs it: the origin (scheme, host, port) of its
 * configured controller URL, lower-cased by the URL parser. Throws on a URL that does not parse.
 */
export function controllerAudience(url: string): string {
  return new URL(url).origin;
}

/**
 * Domain-separated bytes a host signs to prove its identity; never confusable with a manifest.
 * `audience` (see controllerAudience) binds the signature to the controller the host meant: a
 * signature a man in the middle collects for another origin does not verify at the real one.
 */
export function challengeMessage(host: string, nonce: string, audience: string): Uint8Array {
  return Buffer.from(`shoal-auth-v2\n${audience}\n${host}\n${nonce}`, 'utf8');
}

// ---- Manifest delivery --------------------------------------------------------------------

/** GET /v1/agent/manifest answers this (200), 304 when the ETag ("v<version>") matches, 204 when none is set. */
export const ManifestResponse = z.object({ protocol: Protocol, version: z.number().int().positive(), envelope: Envelope });
export type ManifestResponse = z.infer<typeof ManifestResponse>;

/** Controller → agent over the websocket. */
export const ServerMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('challenge'), protocol: Protocol, nonce: z.string() }),
  z.object({ type: z.literal('welcome'), protocol: Protocol, session: Session }),
  z.object({ type: z.literal('manifest'), protocol: Protocol, version: z.number().int().positive(), envelope: Envelope }),
  z.object({ type: z.literal('error'), protocol: Protocol, code: z.string(), message: z.string() }),
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

/** Agent → controller over the websocket. */
export const AgentMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auth'), protocol: Protocol, host: HostName, signature: z.base64(), ...LoginFacts }),
]);
export type AgentMessage = z.infer<typeof AgentMessage>;

/** Websocket close codes in the private range, so the agent knows whether retrying can help. */
export const WsClose = {
  authFailed: 4401,
  protocolMismatch: 4400,
  replaced: 4409,
  /** Too many unauthenticated connections (from this address, or in total): back off and retry. */
  tooManyUnauthenticated: 4429,
  shuttingDown: 4503,
} as const;

export const AgentRoutes = {
  enroll: '/v1/agent/enroll',
  challenge: '/v1/agent/challenge',
  session: '/v1/agent/session',
  manifest: '/v1/agent/manifest',
  reports: '/v1/agent/reports',
  rebootGrant: '/v1/agent/reboot-grant',
  websocket: '/v1/agent/ws',
} as const;

/** Every 4xx/5xx body from the controller. `code` is stable for scripts; `message` names what was wrong. */
export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), issues: z.array(z.string()).optional() }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

export function manifestEtag(version: number): string {
  return `"v${version}"`;
}

/** An agent asks before it reboots (POST /v1/agent/reboot-grant): the controller keeps the fleet reboot lock. */
export const RebootGrantRequest = z.object({ protocol: Protocol, manifestVersion: z.number().int().positive() }).strict();
export type RebootGrantRequest = z.infer<typeof RebootGrantRequest>;

export const RebootGrantAnswer = z.object({
  protocol: Protocol,
  granted: z.boolean(),
  /** Why not (which hosts hold the lock); empty when granted. */
  reason: z.string().max(4096),
  /** When to ask again after a refusal. */
  retryAfterMs: z.number().int().nonnegative(),
});
export type RebootGrantAnswer = z.infer<typeof RebootGrantAnswer>;
