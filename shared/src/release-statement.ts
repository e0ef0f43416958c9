import * as z from 'zod';
import { nodeEd25519, type Ed25519 } from './ed25519.js';
import { Envelope, signEnvelope, verifyEnvelope } from './envelope.js';
import type { NamedPublicKey, NamedSecretKey } from './keys.js';
import {
  HostName,
  IsoTime,
  Protocol,
  PROTOCOL_VERSION,
  RELEASE_STATEMENT_PAYLOAD_TYPE,
  ReleaseSource,
  ReleaseStatementPayload,
  StorePath,
  type RefusalReason,
} from './protocol.js';
import { ReleaseName } from './rollout-api.js';

/**
 * Releases as CI makes them: `shoal release build` writes a ReleaseBuild (host → system, plus
 * facts about each system), `shoal release sign` turns it into a ReleaseBundle (one signed
 * statement per host) without touching the network, and the controller stores a bundle only
 * when every statement verifies. Agents check the same statements again; both sides use
 * verifyReleaseStatement, so "signed by CI" means one thing everywhere.
 */

/** A path inside a store path (a kernel image, an initrd), as `readlink -f` of the system's link gives it. */
const StoreFile = z.string().max(1024).regex(/^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[^/]+(\/.*)?$/, 'must be a path in /nix/store');

/** What the controller can know about a system without asking a host: for reboot and download predictions. */
export const SystemFacts = z
  .object({
    closureBytes: z.number().int().nonnegative().nullable(),
    kernel: StoreFile.nullable(),
    initrd: StoreFile.nullable(),
    kernelModules: StoreFile.nullable(),
    /** The content of the system's `switch-inhibitors` file, when it has one. */
    switchInhibitors: z.string().max(64 * 1024).nullable(),
  })
  .strict();
export type SystemFacts = z.infer<typeof SystemFacts>;

export const ReleaseBuildHost = z
  .object({ host: HostName, storePath: StorePath, facts: SystemFacts.nullable().default(null) })
  .strict();
export type ReleaseBuildHost = z.infer<typeof ReleaseBuildHost>;

export const ReleaseBuild = z
  .object({
    protocol: Protocol,
    kind: z.literal('shoal-release-build'),
    name: ReleaseName,
    description: z.string().max(2000).default(''),
    source: ReleaseSource,
    createdAt: IsoTime,
    hosts: z.array(ReleaseBuildHost).min(1).max(100_000),
  })
  .strict();
export type ReleaseBuild = z.infer<typeof ReleaseBuild>;

export const SignedReleaseHost = ReleaseBuildHost.extend({ statement: Envelope });
export type SignedReleaseHost = z.infer<typeof SignedReleaseHost>;

/** A build with one CI statement per host: what `shoal release sign` writes and the controller stores. */
export const ReleaseBundle = ReleaseBuild.extend({
  kind: z.literal('shoal-release-bundle'),
  floor: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  hosts: z.array(SignedReleaseHost).min(1).max(100_000),
}).strict();
export type ReleaseBundle = z.infer<typeof ReleaseBundle>;

export function statementPayload(build: Pick<ReleaseBuild, 'name' | 'source' | 'createdAt'>, host: ReleaseBuildHost, floor: number): ReleaseStatementPayload {
  return {
    protocol: PROTOCOL_VERSION,
    host: host.host,
    storePath: host.storePath,
    release: build.name,
    source: build.source,
    createdAt: build.createdAt,
    floor,
  };
}

export function signStatement(payload: ReleaseStatementPayload, key: NamedSecretKey, ed25519: Ed25519 = nodeEd25519): Envelope {
  return signEnvelope(RELEASE_STATEMENT_PAYLOAD_TYPE, Buffer.from(JSON.stringify(payload), 'utf8'), [key], ed25519);
}

/** Signs one statement per host. Native Ed25519 by default: 10,000 hosts in well under a second. */
export function signReleaseBundle(build: ReleaseBuild, key: NamedSecretKey, floor: number, ed25519: Ed25519 = nodeEd25519): ReleaseBundle {
  return {
    protocol: PROTOCOL_VERSION,
    kind: 'shoal-release-bundle',
    name: build.name,
    description: build.description,
    source: build.source,
    createdAt: build.createdAt,
    floor,
    hosts: build.hosts.map((host) => ({ ...host, statement: signStatement(statementPayload(build, host, floor), key, ed25519) })),
  };
}

export type StatementRefusal = Extract<
  RefusalReason,
  'statement-malformed' | 'statement-unknown-key' | 'statement-bad-signature' | 'statement-wrong-host' | 'statement-mismatch'
>;

export type StatementVerification =
  | { valid: true; statement: ReleaseStatementPayload; keyId: string }
  | { valid: false; reason: StatementRefusal; message: string };

/**
 * Does a trusted release key say that `expected.host` may run `expected.storePath`? Only the
 * valid branch carries the statement. The floor is not judged here: it depends on what the
 * host accepted before (the agent) or on nothing at all (the controller storing a release).
 */
export function verifyReleaseStatement(
  input: unknown,
  expected: { host: string; storePath: string },
  trustedKeys: readonly NamedPublicKey[],
  ed25519: Ed25519,
): StatementVerification {
  const envelope = Envelope.safeParse(input);
  if (!envelope.success) {
    const issue = envelope.error.issues[0]!;
    return { valid: false, reason: 'statement-malformed', message: `release statement ${issue.path.join('.') || '(top level)'}: ${issue.message}` };
  }
  const signed = verifyEnvelope(envelope.data, RELEASE_STATEMENT_PAYLOAD_TYPE, trustedKeys, 'release', ed25519);
  if (!signed.valid) {
    const reason = signed.reason === 'bad-signature' ? 'statement-bad-signature' : signed.reason === 'unknown-key' ? 'statement-unknown-key' : 'statement-malformed';
    // "release statement signed by K, none of which is a trusted release key"; "release statement: signature by K does not verify".
    return { valid: false, reason, message: `release statement${signed.reason === 'unknown-key' ? ' ' : ': '}${signed.message}` };
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(signed.payload));
  } catch (error) {
    return { valid: false, reason: 'statement-malformed', message: `release statement payload is not UTF-8 JSON: ${(error as Error).message}` };
  }
  const parsed = ReleaseStatementPayload.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { valid: false, reason: 'statement-malformed', message: `release statement ${issue.path.join('.') || '(top level)'}: ${issue.message}` };
  }
  const statement = parsed.data;
  if (statement.host !== expected.host) {
    return {
      valid: false,
      reason: 'statement-wrong-host',
      message: `release statement is for host ${JSON.stringify(statement.host)}, not ${JSON.stringify(expected.host)}`,
    };
  }
  if (statement.storePath !== expected.storePath) {
    return {
      valid: false,
      reason: 'statement-mismatch',
      message: `release statement authorises ${statement.storePath}, the assignment names ${expected.storePath}`,
    };
  }
  return { valid: true, statement, keyId: signed.keyId };
}
