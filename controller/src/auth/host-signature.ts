import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { fromBase64 } from '../../../shared/src/keys.js';
import { challengeMessage, controllerAudience } from '../../../shared/src/protocol.js';
import type { Store } from '../db/store.js';
import { hostPublicKey } from '../hosts/lookup.js';
import type { ChallengeStore } from './challenges.js';

export type HostSignatureRefusal = 'unknown-host' | 'bad-signature';
export type HostProof =
  | { ok: true }
  | { ok: false; reason: HostSignatureRefusal | 'unknown-nonce' | 'expired-nonce' | 'wrong-host'; message: string };

/**
 * The origin a host's signature must name: the configured publicUrl's when there is one (behind a
 * proxy the Host header says little), else the origin the request reached this controller at. A
 * signature a man in the middle collected under another origin then verifies nowhere else.
 * `requestUrl` is the URL the request arrived at, as built from its Host header (this controller
 * speaks plain HTTP; TLS ends at a proxy, which is why publicUrl exists). null: no usable Host
 * header, so nothing can verify.
 */
export function expectedAudience(configured: string | null, requestUrl: string | null): string | null {
  if (configured !== null) return configured;
  if (requestUrl === null) return null;
  try {
    return controllerAudience(requestUrl);
  } catch {
    return null;
  }
}

/** The one check of a host's login signature, for the HTTP session route and the websocket alike. */
export async function verifyHostSignature(
  store: Store,
  host: string,
  nonce: string,
  signatureBase64: string,
  audience: string | null,
): Promise<{ ok: true } | { ok: false; reason: HostSignatureRefusal; message: string }> {
  const publicKey = await hostPublicKey(store, host);
  if (publicKey === null) return { ok: false, reason: 'unknown-host', message: `no host named ${JSON.stringify(host)}` };
  if (audience === null) return { ok: false, reason: 'bad-signature', message: 'the request has no Host header to bind the signature to; set publicUrl' };
  const valid = nodeEd25519.verify(challengeMessage(host, nonce, audience), fromBase64(signatureBase64), fromBase64(publicKey));
  if (!valid) {
    return {
      ok: false,
      reason: 'bad-signature',
      message: `signature does not verify under the key enrolled for ${JSON.stringify(host)} for controller ${audience} (is the agent's controllerUrl this controller's publicUrl?)`,
    };
  }
  return { ok: true };
}

/**
 * Checks that `host` signed our nonce, for this controller, with its enrolled key. The nonce is
 * spent first, so a signature (good or bad) can never be tried against the same nonce twice.
 */
export async function verifyHostProof(
  store: Store,
  challenges: ChallengeStore,
  host: string,
  nonce: string,
  signatureBase64: string,
  audience: string | null,
): Promise<HostProof> {
  const check = await challenges.consume(host, nonce);
  if (!check.ok) {
    const messages = {
      'unknown-nonce': 'nonce was not issued by this controller or was already used',
      'expired-nonce': 'nonce expired; ask for a new challenge',
      'wrong-host': `nonce was issued to another host, not ${JSON.stringify(host)}`,
    } as const;
    return { ok: false, reason: check.reason, message: messages[check.reason] };
  }
  return verifyHostSignature(store, host, nonce, signatureBase64, audience);
}
