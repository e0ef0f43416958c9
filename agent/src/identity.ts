import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/src/logger.js';
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

/** The key file exists but holds no usable key (empty, cut short, not base64 of 64 bytes). */
class DamagedKeyError extends IdentityError {}

async function readIdentity(file: string): Promise<Identity> {
  const info = await stat(file);
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
    throw new IdentityError(`host key ${file} is readable by group or others (mode ${mode}); refusing to use it. Run: chmod 600 ${file}`);
  }
  const text = (await readFile(file, 'utf8')).trim();
  let secretKey: Uint8Array;
  try {
    secretKey = fromBase64(text);
  } catch {
    throw new DamagedKeyError(`host key ${file} is not base64 (${text.length} characters)`);
  }
  if (secretKey.length !== 64) {
    throw new DamagedKeyError(`host key ${file} must hold a base64 64-byte Ed25519 secret key, found ${secretKey.length} bytes`);
  }
  return { file, secretKey, publicKey: secretKey.slice(32) };
}

export interface IdentityOptions {
  /**
   * Whether this host enrolled (its state says so). A damaged key of a host that never enrolled
   * was never shown to anyone (an agent from before atomic creation died while writing it), so
   * it is set aside and replaced; an enrolled host's key is its name at the controller, and
   * losing it needs an operator.
   */
  enrolled?: boolean;
  logger?: Logger;
}

/**
 * Loads stateDir/host.key, creating it on first start. Creation is atomic: the key is written
 * and fsynced under a temporary name (mode 0600) and only then linked to host.key, which fails
 * if that exists, so a crash (or a full disk) never leaves an empty or partial host.key behind.
 * A key file others can read is refused rather than fixed: someone may already have copied it.
 */
export async function loadOrCreateIdentity(stateDir: string, options: IdentityOptions = {}): Promise<{ identity: Identity; created: boolean }> {
  const file = join(stateDir, HOST_KEY_FILE);
  try {
    return { identity: await readIdentity(file), created: false };
  } catch (error) {
    if (error instanceof DamagedKeyError) {
      if (options.enrolled ?? true) {
        throw new IdentityError(
          `${error.message}. This host enrolled with the key that was there; move the file away, start the agent to make a new key, and re-key the host at the controller`,
        );
      }
      const aside = `${file}.damaged-${Date.now()}`;
      await rename(file, aside);
      options.logger?.warn({ file, movedTo: aside, problem: error.message }, 'host key is damaged and this host never enrolled with it; set it aside and making a new one');
    } else if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw error;
    }
  }
  await ensureStateDir(stateDir);
  const pair = generateKeyPair();
  const tmp = join(stateDir, `.${HOST_KEY_FILE}.${process.pid}.${Date.now()}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    try {
      await handle.chmod(0o600); // the umask cannot widen 0600, but a restrictive one must not narrow our read
      await handle.writeFile(`${toBase64(pair.secretKey)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(tmp, file);
    } catch (error) {
      // Another process created it between our read and our create: use theirs.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return { identity: await readIdentity(file), created: false };
      throw error;
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
  await syncDir(stateDir);
  return { identity: { file, secretKey: pair.secretKey, publicKey: pair.publicKey }, created: true };
}
