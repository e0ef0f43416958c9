import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { fromBase64 } from '../../../shared/src/keys.js';
import { challengeMessage } from '../../../shared/src/protocol.js';
import type { Db } from '../db/open.js';
import { hostPublicKey } from '../hosts/lookup.js';
import type { ChallengeStore } from './challenges.js';

export type HostProof =
  | { ok: true }
  | { ok: false; reason: 'unknown-host' | 'unknown-nonce' | 'expired-nonce' | 'wrong-host' | 'bad-signature'; message: string };

/**
 * Checks that `host` signed our nonce with its enrolled key. The nonce is spent first, so a
 * signature (good or bad) can never be tried against the same nonce twice.
 */
export function verifyHostProof(db: Db, challenges: ChallengeStore, host: string, nonce: string, signatureBase64: string): HostProof {
  const check = challenges.consume(host, nonce);
  if (!check.ok) {
    const messages = {
      'unknown-nonce': 'nonce was not issued by this controller or was already used',
      'expired-nonce': 'nonce expired; ask for a new challenge',
      'wrong-host': `nonce was issued to another host, not ${JSON.stringify(host)}`,
    } as const;
    return { ok: false, reason: check.reason, message: messages[check.reason] };
  }
  const publicKey = hostPublicKey(db, host);
  if (publicKey === null) return { ok: false, reason: 'unknown-host', message: `no host named ${JSON.stringify(host)}` };
  const valid = nodeEd25519.verify(challengeMessage(host, nonce), fromBase64(signatureBase64), fromBase64(publicKey));
  if (!valid) return { ok: false, reason: 'bad-signature', message: `signature does not verify under the key enrolled for ${JSON.stringify(host)}` };
  return { ok: true };
}
