import { nodeEd25519, nodePrivateKey, type Ed25519 } from '../../../shared/src/ed25519.js';
import { preAuthEncoding, signEnvelope, type Envelope } from '../../../shared/src/envelope.js';
import { toBase64, type NamedSecretKey } from '../../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE } from '../../../shared/src/protocol.js';
import { SigningThread } from './signing-thread.js';

/**
 * Signs assignments (manifest payloads) with the controller key: "this host, this system, now".
 * Agents trust it through trustedControllerKeys; what may run at all is the release statement the
 * assignment carries, which this key cannot make (outside single-key mode). Native Ed25519: a wave
 * of thousands must not stall.
 */
export interface ManifestSigner {
  readonly keyId: string;
  sign(payload: Uint8Array): Envelope;
  /**
   * Signs every payload, in order, running `alongside` meanwhile: with the signing thread, a
   * wave's other writes happen while its manifests are signed elsewhere. It waits for the thread
   * without yielding to the event loop, so it fits inside a transaction body as a synchronous step
   * would; the envelopes are the same as `sign` would make (Ed25519 is deterministic), so a body
   * run again after a conflict signs the same bytes again.
   */
  signMany(payloads: readonly Uint8Array[], alongside: () => Promise<void>): Promise<Envelope[]>;
  /** Stops the signing thread, if one runs. */
  close(): void;
}

/** Below this many payloads the hand-over to the signing thread costs more than it saves. */
const THREAD_MINIMUM = 32;

export function createManifestSigner(key: NamedSecretKey, ed25519: Ed25519 = nodeEd25519): ManifestSigner {
  // Only Node's Ed25519 runs on the thread; another implementation (tests) signs here.
  const thread = ed25519 === nodeEd25519 ? new SigningThread(nodePrivateKey(key.secretKey)) : null;
  const sign = (payload: Uint8Array) => signEnvelope(MANIFEST_PAYLOAD_TYPE, payload, [key], ed25519);
  return {
    keyId: key.keyId,
    sign,
    async signMany(payloads, alongside) {
      if (thread && payloads.length >= THREAD_MINIMUM) {
        const messages = payloads.map((payload) => preAuthEncoding(MANIFEST_PAYLOAD_TYPE, payload));
        let ran = false;
        const signatures = await thread.sign(messages, () => {
          ran = true;
          return alongside();
        });
        if (signatures) {
          return payloads.map((payload, i) => ({ payloadType: MANIFEST_PAYLOAD_TYPE, payload: toBase64(payload), signatures: [{ keyid: key.keyId, sig: toBase64(signatures[i]!) }] }));
        }
        if (!ran) await alongside();
        return payloads.map(sign);
      }
      await alongside();
      return payloads.map(sign);
    },
    close: () => thread?.close(),
  };
}
