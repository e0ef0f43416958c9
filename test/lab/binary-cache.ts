import { readFile } from 'node:fs/promises';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { nix, NIX_OFFLINE } from './nix.js';
import { runOk } from './run.js';

/** A Nix binary-cache signing key: the secret in a file, the public half as Nix prints it ("name:base64"). */
export interface CacheKey {
  name: string;
  secretKeyFile: string;
  publicKey: string;
}

export async function generateCacheKey(dir: string, name: string): Promise<CacheKey> {
  await mkdir(dir, { recursive: true });
  const secretKeyFile = join(dir, `${name}.secret`);
  const publicKeyFile = join(dir, `${name}.public`);
  await runOk('nix-store', ['--generate-binary-cache-key', name, secretKeyFile, publicKeyFile]);
  return { name, secretKeyFile, publicKey: (await readFile(publicKeyFile, 'utf8')).trim() };
}

/**
 * Signs the closures of `paths` with `key` (in the machine's store) and copies them into a
 * file:// binary cache at `dir`, which serveCache() can then serve over HTTP.
 */
export async function publishToCache(options: { dir: string; key: CacheKey; paths: readonly string[] }): Promise<void> {
  const { dir, key, paths } = options;
  if (paths.length === 0) return;
  await mkdir(dir, { recursive: true });
  await nix(['store', 'sign', ...NIX_OFFLINE, '--key-file', key.secretKeyFile, '--recursive', ...paths]);
  // zstd: as fast as "none" for these small paths, and still a compressed cache like real ones.
  await nix(['copy', ...NIX_OFFLINE, '--to', `file://${dir}?compression=zstd`, ...paths]);
}
