import type { Ed25519 } from '../../../shared/src/ed25519.js';
import type { NamedPublicKey } from '../../../shared/src/keys.js';
import { narinfoFingerprint, type Narinfo } from './narinfo.js';

/**
 * Whether a narinfo is signed by a key the hosts trust, decided in one place. Only `trusted`
 * vouches for the path; every other outcome names why not.
 *  unsigned        no Sig line at all
 *  untrusted-key   signed, but only by keys not configured for this cache
 *  bad-signature   a Sig names a trusted key but does not verify (forged, or the narinfo was altered)
 */
export type SignatureVerdict =
  | { trusted: true; keyId: string }
  | { trusted: false; reason: 'unsigned' | 'untrusted-key' | 'bad-signature'; keyIds: string[] };

export function verifyNarinfo(narinfo: Narinfo, trustedKeys: readonly NamedPublicKey[], ed25519: Ed25519): SignatureVerdict {
  if (narinfo.sigs.length === 0) return { trusted: false, reason: 'unsigned', keyIds: [] };
  const message = Buffer.from(narinfoFingerprint(narinfo), 'utf8');
  const named: string[] = [];
  let forged = false;
  for (const sig of narinfo.sigs) {
    const colon = sig.indexOf(':');
    const keyId = colon > 0 ? sig.slice(0, colon) : '';
    named.push(keyId);
    const key = trustedKeys.find((k) => k.keyId === keyId);
    if (!key) continue;
    const signature = new Uint8Array(Buffer.from(sig.slice(colon + 1), 'base64'));
    if (ed25519.verify(message, signature, key.publicKey)) return { trusted: true, keyId };
    forged = true;
  }
  return { trusted: false, reason: forged ? 'bad-signature' : 'untrusted-key', keyIds: named };
}
