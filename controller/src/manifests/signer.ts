import { nodeEd25519, type Ed25519 } from '../../../shared/src/ed25519.js';
import { signEnvelope, type Envelope } from '../../../shared/src/envelope.js';
import type { NamedSecretKey } from '../../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE } from '../../../shared/src/protocol.js';

/**
 * Signs assignments (manifest payloads) with the controller key: "this host, this system, now".
 * Agents trust it through trustedControllerKeys; what may run at all is the release statement the
 * assignment carries, which this key cannot make (outside single-key mode). Native Ed25519: a wave
 * of thousands must not stall.
 */
export interface ManifestSigner {
  readonly keyId: string;
  sign(payload: Uint8Array): Envelope;
}

export function createManifestSigner(key: NamedSecretKey, ed25519: Ed25519 = nodeEd25519): ManifestSigner {
  return {
    keyId: key.keyId,
    sign: (payload) => signEnvelope(MANIFEST_PAYLOAD_TYPE, payload, [key], ed25519),
  };
}
