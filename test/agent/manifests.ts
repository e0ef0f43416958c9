import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { signEnvelope, type Envelope } from '../../shared/src/envelope.js';
import type { NamedSecretKey } from '../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE, PROTOCOL_VERSION, type ManifestPayload } from '../../shared/src/protocol.js';

export const NOW = new Date('2030-01-01T12:00:00Z');
export const PATH_A = '/nix/store/g5qzkagswnhgyy0lq4bgbw2ka48n15bw-nixos-system-web-1';
export const PATH_B = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-web-1';

export function manifestPayload(overrides: Partial<Record<keyof ManifestPayload, unknown>> = {}): Record<string, unknown> {
  return {
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
}

/** A really signed envelope, signed over the exact payload bytes. */
export function signedManifest(
  key: NamedSecretKey,
  overrides: Partial<Record<keyof ManifestPayload, unknown>> = {},
  payloadType = MANIFEST_PAYLOAD_TYPE,
): Envelope {
  const bytes = new TextEncoder().encode(JSON.stringify(manifestPayload(overrides)));
  return signEnvelope(payloadType, bytes, [key], tweetnaclEd25519);
}
