import { readFileSync } from 'node:fs';
import { nodeEd25519, type Ed25519 } from '../../../shared/src/ed25519.js';
import { signEnvelope, type Envelope } from '../../../shared/src/envelope.js';
import { parseSecretKey, type NamedSecretKey } from '../../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE } from '../../../shared/src/protocol.js';

/** Signs manifest payloads with the release key. Native Ed25519: a wave of thousands must not stall. */
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

export function loadManifestSigner(file: string): ManifestSigner {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read release key ${file}: ${(error as Error).message}`);
  }
  return createManifestSigner(parseSecretKey(text));
}
