import * as z from 'zod';
import type { Ed25519 } from './ed25519.js';
import { fromBase64, toBase64, type NamedPublicKey, type NamedSecretKey } from './keys.js';

/** A DSSE envelope (github.com/secure-systems-lab/dsse): the payload is signed as bytes, never re-serialised. */
export const Envelope = z.object({
  payloadType: z.string().min(1).max(200),
  payload: z.base64().max(64 * 1024),
  signatures: z
    .array(z.object({ keyid: z.string().max(100), sig: z.base64().max(200) }))
    .min(1)
    .max(16),
});
export type Envelope = z.infer<typeof Envelope>;

/** Pre-authentication encoding: binds the payload type to the bytes so one cannot be swapped for another. */
export function preAuthEncoding(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, 'utf8');
  const header = Buffer.from(`DSSEv1 ${type.length} ${payloadType} ${payload.length} `, 'utf8');
  return Buffer.concat([header, payload]);
}

export function signEnvelope(
  payloadType: string,
  payload: Uint8Array,
  keys: readonly NamedSecretKey[],
  ed25519: Ed25519,
): Envelope {
  const message = preAuthEncoding(payloadType, payload);
  return {
    payloadType,
    payload: toBase64(payload),
    signatures: keys.map((key) => ({ keyid: key.keyId, sig: toBase64(ed25519.sign(message, key.secretKey)) })),
  };
}

/** Whose keys an envelope must be signed by, as a refusal names them: "a trusted controller key". */
export type KeyRole = 'controller' | 'release';

export type EnvelopeVerification =
  | { valid: true; payload: Uint8Array; keyId: string }
  | { valid: false; reason: 'wrong-payload-type' | 'unknown-key' | 'bad-signature'; message: string };

/**
 * Accepts the envelope when at least one signature is valid under a trusted key. Only the valid
 * branch carries the payload, so nothing unverified can be read by mistake. `role`: what the
 * trusted keys are, so a refusal says which key was unknown.
 */
export function verifyEnvelope(
  envelope: Envelope,
  expectedPayloadType: string,
  trustedKeys: readonly NamedPublicKey[],
  role: KeyRole,
  ed25519: Ed25519,
): EnvelopeVerification {
  if (envelope.payloadType !== expectedPayloadType) {
    return {
      valid: false,
      reason: 'wrong-payload-type',
      message: `payload type is ${JSON.stringify(envelope.payloadType)}, expected ${JSON.stringify(expectedPayloadType)}`,
    };
  }
  const payload = fromBase64(envelope.payload);
  const message = preAuthEncoding(envelope.payloadType, payload);
  let sawTrustedKey = false;
  for (const signature of envelope.signatures) {
    const candidates = trustedKeys.filter((key) => key.keyId === signature.keyid);
    for (const key of candidates) {
      sawTrustedKey = true;
      if (ed25519.verify(message, fromBase64(signature.sig), key.publicKey)) {
        return { valid: true, payload, keyId: key.keyId };
      }
    }
  }
  const keyIds = envelope.signatures.map((s) => s.keyid).join(', ');
  return sawTrustedKey
    ? { valid: false, reason: 'bad-signature', message: `signature by ${keyIds} does not verify` }
    : { valid: false, reason: 'unknown-key', message: `signed by ${keyIds}, none of which is a trusted ${role} key` };
}
