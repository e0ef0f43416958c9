import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type JsonWebKey, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

/**
 * One Ed25519 interface, two implementations producing byte-identical RFC 8032 signatures:
 * tweetnacl (portable pure JavaScript) and Node's native crypto (about 150x faster, and unaffected
 * by the agent's --jitless: used by the agent and on the controller's hot paths).
 */
export interface Ed25519 {
  readonly name: 'tweetnacl' | 'node';
  /** secretKey is the 64-byte tweetnacl form: 32-byte seed followed by the 32-byte public key. */
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array;
  verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean;
}

export const tweetnaclEd25519: Ed25519 = {
  name: 'tweetnacl',
  sign: (message, secretKey) => nacl.sign.detached(message, secretKey),
  verify: (message, signature, publicKey) =>
    signature.length === nacl.sign.signatureLength &&
    publicKey.length === nacl.sign.publicKeyLength &&
    nacl.sign.detached.verify(message, signature, publicKey),
};

// Wraps a raw 32-byte seed as PKCS#8 for OID 1.3.101.112 (a private key is imported once per key, so its speed does not matter).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const KEY_CACHE_LIMIT = 50_000;

/**
 * Raw public keys reach OpenSSL as JWK (RFC 8037 OKP), not wrapped in DER: OpenSSL 3 decodes a DER key
 * through its generic decoder, about ten times slower than the JWK import. A controller imports
 * each host's key once per login, so at 10,000 hosts connecting that import outweighed the
 * signature check itself (bench/README.md, "SQLite back at its pre-async figures").
 */
function publicJwk(publicKey: Uint8Array): JsonWebKey {
  return { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url') };
}

function cachedKey(cache: Map<string, KeyObject>, raw: Uint8Array, make: () => KeyObject): KeyObject {
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
  let key = cache.get(id);
  if (!key) {
    if (cache.size >= KEY_CACHE_LIMIT) cache.clear();
    key = make();
    cache.set(id, key);
  }
  return key;
}

/** Node's key object for a 64-byte tweetnacl secret key (its 32-byte seed): what node:crypto signs with, also on another thread. */
export function nodePrivateKey(secretKey: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
}

export function createNodeEd25519(): Ed25519 {
  const privateKeys = new Map<string, KeyObject>();
  const publicKeys = new Map<string, KeyObject>();
  return {
    name: 'node',
    sign(message, secretKey) {
      const seed = secretKey.subarray(0, 32);
      const key = cachedKey(privateKeys, seed, () => nodePrivateKey(seed));
      return new Uint8Array(nodeSign(null, message, key));
    },
    verify(message, signature, publicKey) {
      if (signature.length !== 64 || publicKey.length !== 32) return false;
      const key = cachedKey(publicKeys, publicKey, () => createPublicKey({ key: publicJwk(publicKey), format: 'jwk' }));
      try {
        return nodeVerify(null, message, key, signature);
      } catch {
        return false;
      }
    },
  };
}

export const nodeEd25519: Ed25519 = createNodeEd25519();

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export function generateKeyPair(): KeyPair {
  return nacl.sign.keyPair();
}
