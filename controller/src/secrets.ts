import { createHash, randomBytes } from 'node:crypto';

/** Bearer secrets are random; only their sha256 is stored, so a leaked database grants nothing. */
export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function newId(): string {
  return randomBytes(8).toString('hex');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
