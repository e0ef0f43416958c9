import * as z from 'zod';
import type { Ed25519 } from '../../shared/src/ed25519.js';
import { Envelope, verifyEnvelope } from '../../shared/src/envelope.js';
import type { NamedPublicKey } from '../../shared/src/keys.js';
import {
  MANIFEST_PAYLOAD_TYPE,
  MAX_VERSION_STEP,
  ManifestPayload,
  type RefusalReason,
  type ReleaseStatementPayload,
} from '../../shared/src/protocol.js';
import { verifyReleaseStatement } from '../../shared/src/release-statement.js';
import { storePathProblem } from '../../shared/src/store-path.js';

/**
 * The one place the agent decides whether to trust a manifest. Two roles must agree: the
 * controller (online) signs the assignment "this host, this system, now", and CI (offline)
 * signs the release statement inside it, "this host may run this system". Holding only one of
 * the two keys is not enough to move a host. The rules, in the order they are checked, are
 * listed in agent/README.md ("Which manifests a host accepts").
 */

export interface VerifyContext {
  host: string;
  /** Keys that may sign assignments (MANIFEST_PAYLOAD_TYPE). */
  trustedControllerKeys: readonly NamedPublicKey[];
  /** Keys that may sign release statements (RELEASE_STATEMENT_PAYLOAD_TYPE). */
  trustedReleaseKeys: readonly NamedPublicKey[];
  highestVersion: number;
  highestStorePath: string | null;
  highestFloor: number;
  /** The host lost what it accepted before; nothing is accepted until an operator re-bootstraps it. */
  stateLost: boolean;
  maxClockSkewMs: number;
  maxManifestLifetimeMs: number;
  now: Date;
  ed25519: Ed25519;
}

/**
 * Only `valid` carries the payload and the statement. `refused` carries what was claimed only
 * once the signature checked out (so a forged envelope cannot put words in the agent's report).
 */
export type Verification =
  | { outcome: 'valid'; manifest: ManifestPayload; keyId: string; statement: ReleaseStatementPayload; statementKeyId: string }
  | { outcome: 'already-have'; version: number; storePath: string }
  | { outcome: 'refused'; reason: RefusalReason; message: string; version: number | null; storePath: string | null };

export const REBOOTSTRAP_COMMAND = 'shoal-agent rebootstrap --config FILE --min-version N';

function refused(
  reason: RefusalReason,
  message: string,
  claimed: { version?: number; storePath?: string } = {},
): Verification {
  const storePath = claimed.storePath !== undefined && storePathProblem(claimed.storePath) === null ? claimed.storePath : null;
  return { outcome: 'refused', reason, message, version: claimed.version ?? null, storePath };
}

// Structure first, store path on its own: an invalid path is its own refusal, not "malformed".
const ManifestShape = ManifestPayload.extend({ storePath: z.string().max(1024) });

function describeDuration(ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

export function verifyManifest(input: unknown, ctx: VerifyContext): Verification {
  const envelope = Envelope.safeParse(input);
  if (!envelope.success) {
    const issue = envelope.error.issues[0]!;
    return refused('malformed', `envelope ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const signed = verifyEnvelope(envelope.data, MANIFEST_PAYLOAD_TYPE, ctx.trustedControllerKeys, 'controller', ctx.ed25519);
  // "assignment signed by K, none of which is a trusted controller key"; "assignment: signature by K does not verify".
  if (!signed.valid) return refused(signed.reason, `assignment${signed.reason === 'unknown-key' ? ' ' : ': '}${signed.message}`);

  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(signed.payload));
  } catch (error) {
    return refused('malformed', `payload is not UTF-8 JSON: ${(error as Error).message}`);
  }
  const shape = ManifestShape.safeParse(json);
  if (!shape.success) {
    const issue = shape.error.issues[0]!;
    return refused('malformed', `payload ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const payload = shape.data;
  const claimed = { version: payload.version, storePath: payload.storePath };

  if (payload.host !== ctx.host) {
    // No version in the report: the number belongs to another host's sequence and would be read as one of ours.
    return refused('wrong-host', `manifest is for host ${JSON.stringify(payload.host)}, this is ${JSON.stringify(ctx.host)}`);
  }
  if (ctx.stateLost) {
    return refused(
      'state-lost',
      `this host lost the record of the manifests it accepted (its state file and the copy of its watermark are gone, its host key is not), ` +
        `so it cannot tell a replayed manifest from a new one and accepts none; after checking what the host runs, ` +
        `run \`${REBOOTSTRAP_COMMAND}\` on it (N: the highest manifest version it is known to have accepted)`,
      claimed,
    );
  }
  if (payload.version === ctx.highestVersion && ctx.highestStorePath !== null) {
    if (payload.storePath === ctx.highestStorePath) {
      return { outcome: 'already-have', version: payload.version, storePath: payload.storePath };
    }
    return refused(
      'equivocation',
      `version ${payload.version} was already accepted for ${ctx.highestStorePath}; this one names ${payload.storePath}`,
      claimed,
    );
  }
  if (payload.version <= ctx.highestVersion) {
    return refused('replayed-version', `version ${payload.version} is not above the highest accepted version ${ctx.highestVersion}`, claimed);
  }
  if (payload.version - ctx.highestVersion > MAX_VERSION_STEP) {
    return refused(
      'version-jump',
      `version ${payload.version} is ${payload.version - ctx.highestVersion} above the highest accepted version ${ctx.highestVersion}; ` +
        `at most ${MAX_VERSION_STEP} is allowed, so that no manifest can leave this host without a version it could still accept`,
      claimed,
    );
  }
  const now = ctx.now.getTime();
  const issuedAt = Date.parse(payload.issuedAt);
  const expiresAt = Date.parse(payload.expiresAt);
  if (!(expiresAt > now)) {
    return refused('expired', `manifest expired at ${payload.expiresAt} (now ${ctx.now.toISOString()})`, claimed);
  }
  if (issuedAt > now + ctx.maxClockSkewMs) {
    return refused(
      'issued-in-future',
      `manifest was issued at ${payload.issuedAt}, later than now (${ctx.now.toISOString()}) plus the allowed clock skew of ${describeDuration(ctx.maxClockSkewMs)}`,
      claimed,
    );
  }
  if (expiresAt - issuedAt > ctx.maxManifestLifetimeMs) {
    return refused(
      'lifetime-too-long',
      `manifest is valid from ${payload.issuedAt} to ${payload.expiresAt}, longer than the allowed ${describeDuration(ctx.maxManifestLifetimeMs)}`,
      claimed,
    );
  }
  const problem = storePathProblem(payload.storePath);
  if (problem !== null) {
    return refused('invalid-store-path', `store path ${JSON.stringify(payload.storePath.slice(0, 200))} ${problem}`, claimed);
  }
  if (payload.statement === null) {
    return refused(
      'no-release-statement',
      `the assignment carries no release statement; this host runs only systems a trusted release key (CI) authorised for it`,
      claimed,
    );
  }
  const statement = verifyReleaseStatement(payload.statement, { host: ctx.host, storePath: payload.storePath }, ctx.trustedReleaseKeys, ctx.ed25519);
  if (!statement.valid) return refused(statement.reason, statement.message, claimed);
  if (statement.statement.floor < ctx.highestFloor) {
    return refused(
      'below-floor',
      `release ${JSON.stringify(statement.statement.release)} has security floor ${statement.statement.floor}, below the floor ${ctx.highestFloor} this host already accepted`,
      claimed,
    );
  }
  return {
    outcome: 'valid',
    manifest: { ...payload, storePath: payload.storePath },
    keyId: signed.keyId,
    statement: statement.statement,
    statementKeyId: statement.keyId,
  };
}
