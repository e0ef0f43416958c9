import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair } from '../../shared/src/ed25519.js';
import { fromBase64, toBase64 } from '../../shared/src/keys.js';
import { syncDir } from './durable-file.js';

/**
 * The host's Ed25519 identity. The secret never leaves the host: the controller only ever sees
 * the public key (at enrollment) and signatures over its challenges.
 */
export interface Identity {
  file: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

export const HOST_KEY_FILE = 'host.key';

export function publicKeyBase64(identity: Identity): string {
  return toBase64(identity.publicKey);
}

/** What an operator runs for a host the controller does not know, exactly as `shoal host register` takes it. */
export function registerCommand(host: string, identity: Identity): string {
  return `shoal host register ${host} --public-key ${publicKeyBase64(identity)}`;
}

/** Makes the state directory private (0700) if it does not exist yet. */
export async function ensureStateDir(stateDir: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
}

async function readIdentity(file: string): Promise<Identity> {
  const info = await stat(file);
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
    throw new IdentityError(`host key ${file} is readable by group or others (mode ${mode}); refusing to use it. Run: chmod 600 ${file}`);
  }
  const secretKey = fromBase64((await readFile(file, 'utf8')).trim());
  if (secretKey.length !== 64) {
    throw new IdentityError(`host key ${file} must hold a base64 64-byte Ed25519 secret key, found ${secretKey.length} bytes`);
  }
  return { file, secretKey, publicKey: secretKey.slice(32) };
}

/**
 * Loads stateDir/host.key, creating it (mode 0600, exclusive create, fsynced) on first start.
 * A key file others can read is refused rather than fixed: someone may already have copied it.
 */
export async function loadOrCreateIdentity(stateDir: string): Promise<{ identity: Identity; created: boolean }> {
  const file = join(stateDir, HOST_KEY_FILE);
  try {
    return { identity: await readIdentity(file), created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await ensureStateDir(stateDir);
  const pair = generateKeyPair();
  let handle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (error) {
    // Another process created it between our read and our create: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return { identity: await readIdentity(file), created: false };
    throw error;
  }
  try {
    await handle.chmod(0o600); // the umask cannot widen 0600, but a restrictive one must not narrow our read
    await handle.writeFile(`${toBase64(pair.secretKey)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await syncDir(stateDir);
  return { identity: { file, secretKey: pair.secretKey, publicKey: pair.publicKey }, created: true };
}
