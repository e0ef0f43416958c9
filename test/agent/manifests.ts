import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { signEnvelope, type Envelope } from '../../shared/src/envelope.js';
import { formatPublicKey, generateNamedKey, type NamedSecretKey } from '../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE, PROTOCOL_VERSION, type ManifestPayload, type ReleaseStatementPayload } from '../../shared/src/protocol.js';
import { signStatement } from '../../shared/src/release-statement.js';

export const NOW = new Date('2030-01-01T12:00:00Z');
export const PATH_A = '/nix/store/g5qzkagswnhgyy0lq4bgbw2ka48n15bw-nixos-system-web-1';
export const PATH_B = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web-1';

/** The two roles' keys the agent tests trust by default: the controller signs assignments, CI signs statements. */
export const CONTROLLER_KEY = generateNamedKey('controller-1');
export const RELEASE_KEY = generateNamedKey('release-1');
/** Config fields trusting exactly those two keys. */
export const TRUST = {
  trustedControllerKeys: [formatPublicKey(CONTROLLER_KEY)],
  trustedReleaseKeys: [formatPublicKey(RELEASE_KEY)],
};

/** A release statement really signed by `key` (CI's release key by default). */
export function releaseStatement(fields: Partial<Record<keyof ReleaseStatementPayload, unknown>> = {}, key: NamedSecretKey = RELEASE_KEY): Envelope {
  const payload = {
    protocol: PROTOCOL_VERSION,
    host: 'web-1',
    storePath: PATH_A,
    release: 'release-1',
    source: { revision: '0123456789abcdef0123456789abcdef01234567', flakeLockHash: null },
    createdAt: new Date(NOW.getTime() - 86_400_000).toISOString(),
    floor: 0,
    ...fields,
  };
  return signStatement(payload as ReleaseStatementPayload, key, tweetnaclEd25519);
}

export interface ManifestOptions {
  /** Signs the statement that goes with the assignment; default RELEASE_KEY. */
  releaseKey?: NamedSecretKey;
  /** The statement's security floor; default 0. */
  floor?: number;
  payloadType?: string;
}

/**
 * An assignment's payload. Unless `overrides.statement` says otherwise, it carries a statement
 * signed for the same host and store path, as the controller sends them.
 */
export function manifestPayload(overrides: Partial<Record<keyof ManifestPayload, unknown>> = {}, options: ManifestOptions = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    protocol: PROTOCOL_VERSION,
    host: 'web-1',
    version: 1,
    storePath: PATH_A,
    action: 'safe-switch',
    rolloutId: null,
    issuedAt: new Date(NOW.getTime() - 60_000).toISOString(),
    expiresAt: new Date(NOW.getTime() + 3_600_000).toISOString(),
    ...overrides,
  };
  if (!('statement' in overrides)) {
    base.statement = releaseStatement({ host: base.host, storePath: base.storePath, floor: options.floor ?? 0 }, options.releaseKey);
  }
  return base;
}

/** A really signed assignment envelope (by `key`, the controller's key in the tests), signed over the exact payload bytes. */
export function signedManifest(
  key: NamedSecretKey = CONTROLLER_KEY,
  overrides: Partial<Record<keyof ManifestPayload, unknown>> = {},
  options: ManifestOptions = {},
): Envelope {
  const bytes = new TextEncoder().encode(JSON.stringify(manifestPayload(overrides, options)));
  return signEnvelope(options.payloadType ?? MANIFEST_PAYLOAD_TYPE, bytes, [key], tweetnaclEd25519);
}
