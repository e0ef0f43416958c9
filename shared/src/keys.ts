import { createHash } from 'node:crypto';
import { generateKeyPair, type KeyPair } from './ed25519.js';

/**
 * Keys travel as "<name>:<base64>", the convention Nix uses for binary-cache keys, so an
 * operator can tell keys apart at a glance and rotate them by name. The name is the key id.
 */
export interface NamedPublicKey {
  keyId: string;
  publicKey: Uint8Array;
}

export interface NamedSecretKey extends NamedPublicKey {
  secretKey: Uint8Array;
}

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError';
}

function splitNamed(text: string, what: string, rawLength: number): { keyId: string; raw: Uint8Array } {
  const trimmed = text.trim();
  const colon = trimmed.indexOf(':');
  if (colon <= 0) throw new KeyFormatError(`${what} must look like "name:base64", got ${JSON.stringify(trimmed.slice(0, 20))}…`);
  const keyId = trimmed.slice(0, colon);
  if (!KEY_NAME.test(keyId)) throw new KeyFormatError(`${what} has an invalid name ${JSON.stringify(keyId)}`);
  const raw = new Uint8Array(Buffer.from(trimmed.slice(colon + 1), 'base64'));
  if (raw.length !== rawLength) {
    throw new KeyFormatError(`${what} "${keyId}" must decode to ${rawLength} bytes, got ${raw.length}`);
  }
  return { keyId, raw };
}

export function parsePublicKey(text: string): NamedPublicKey {
  const { keyId, raw } = splitNamed(text, 'public key', 32);
  return { keyId, publicKey: raw };
}

export function parseSecretKey(text: string): NamedSecretKey {
  const { keyId, raw } = splitNamed(text, 'secret key', 64);
  return { keyId, secretKey: raw, publicKey: raw.slice(32) };
}

export function formatPublicKey(key: NamedPublicKey): string {
  return `${key.keyId}:${Buffer.from(key.publicKey).toString('base64')}`;
}

export function formatSecretKey(key: NamedSecretKey): string {
  return `${key.keyId}:${Buffer.from(key.secretKey).toString('base64')}`;
}

export function generateNamedKey(keyId: string): NamedSecretKey {
  if (!KEY_NAME.test(keyId)) throw new KeyFormatError(`invalid key name ${JSON.stringify(keyId)}`);
  const pair: KeyPair = generateKeyPair();
  return { keyId, secretKey: pair.secretKey, publicKey: pair.publicKey };
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * How a public key is shown to an operator: "SHA256:" and the unpadded base64 of the SHA-256 of
 * the raw key, as OpenSSH shows host keys. The agent logs it at start, so an operator can compare.
 */
export function keyFingerprint(publicKey: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '')}`;
}

export function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'base64'));
}
