import { z } from 'zod';
import type { Ed25519 } from '../../shared/src/ed25519.js';
import { Envelope, verifyEnvelope } from '../../shared/src/envelope.js';
import type { NamedPublicKey } from '../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE, ManifestPayload, type RefusalReason } from '../../shared/src/protocol.js';
import { storePathProblem } from '../../shared/src/store-path.js';

export interface VerifyContext {
  host: string;
  trustedKeys: readonly NamedPublicKey[];
  highestVersion: number;
  highestStorePath: string | null;
  now: Date;
  ed25519: Ed25519;
}

/**
 * Only `valid` carries the payload. `refused` carries what was claimed only once the signature
 * checked out (so a forged envelope cannot put words in the agent's report).
 */
export type Verification =
  | { outcome: 'valid'; manifest: ManifestPayload; keyId: string }
  | { outcome: 'already-have'; version: number; storePath: string }
  | { outcome: 'refused'; reason: RefusalReason; message: string; version: number | null; storePath: string | null };

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

export function verifyManifest(input: unknown, ctx: VerifyContext): Verification {
  const envelope = Envelope.safeParse(input);
  if (!envelope.success) {
    const issue = envelope.error.issues[0]!;
    return refused('malformed', `envelope ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const signed = verifyEnvelope(envelope.data, MANIFEST_PAYLOAD_TYPE, ctx.trustedKeys, ctx.ed25519);
  if (!signed.valid) return refused(signed.reason, signed.message);

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
  const expiresAt = Date.parse(payload.expiresAt);
  if (!(expiresAt > ctx.now.getTime())) {
    return refused('expired', `manifest expired at ${payload.expiresAt} (now ${ctx.now.toISOString()})`, claimed);
  }
  const problem = storePathProblem(payload.storePath);
  if (problem !== null) {
    return refused('invalid-store-path', `store path ${JSON.stringify(payload.storePath.slice(0, 200))} ${problem}`, claimed);
  }
  return { outcome: 'valid', manifest: { ...payload, storePath: payload.storePath }, keyId: signed.keyId };
}
