import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Real Nix fixtures: a tiny "NixOS system" built with builtins.derivation (builder /bin/sh,
 * sandbox off), signed with a fresh binary-cache key and copied into a file:// binary cache.
 */

const NO_CACHE = ['--option', 'substituters', ''];

function nix(args: string[], env?: NodeJS.ProcessEnv): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function buildToplevel(dir: string, marker: string, switchScript = '#!/bin/sh\nexit 0\n'): string {
  const nixFile = join(dir, `${marker}.nix`);
  writeFileSync(join(dir, `${marker}.switch`), switchScript);
  writeFileSync(
    nixFile,
    `builtins.derivation {
  name = "nixos-system-${marker}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  switch = builtins.readFile ./${marker}.switch;
  args = [ "-c" "/bin/mkdir -p $out/bin && printf '%s' \\"$switch\\" > $out/bin/switch-to-configuration && /bin/chmod +x $out/bin/switch-to-configuration && echo ${marker} > $out/marker" ];
}
`,
  );
  return nix(['nix-build', nixFile, '--no-out-link', '--option', 'sandbox', 'false', ...NO_CACHE]);
}

/** A system whose closure holds a base path besides itself, as a NixOS system holds its kernel. */
export function buildOnBase(dir: string, marker: string): { base: string; system: string } {
  const baseFile = join(dir, `${marker}-base.nix`);
  const systemFile = join(dir, `${marker}.nix`);
  writeFileSync(baseFile, `builtins.derivation { name = "base-${marker}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo ${marker} > $out" ]; }\n`);
  writeFileSync(
    systemFile,
    `builtins.derivation { name = "nixos-system-${marker}"; system = builtins.currentSystem; builder = "/bin/sh"; base = import ./${marker}-base.nix; args = [ "-c" "echo $base > $out" ]; }\n`,
  );
  const build = (file: string) => nix(['nix-build', file, '--no-out-link', '--option', 'sandbox', 'false', ...NO_CACHE]);
  return { base: build(baseFile), system: build(systemFile) };
}

export interface BinaryCache {
  url: string;
  publicKey: string;
}

/** Signs the closure of `storePath` with a new key named keyName and copies it to dir/cache. */
export function publishToCache(dir: string, storePath: string, keyName: string): BinaryCache {
  const secretFile = join(dir, `${keyName}.sk`);
  const publicFile = join(dir, `${keyName}.pk`);
  nix(['nix-store', '--generate-binary-cache-key', keyName, secretFile, publicFile]);
  nix(['nix', '--extra-experimental-features', 'nix-command', 'store', 'sign', '--key-file', secretFile, '--recursive', storePath, ...NO_CACHE]);
  const url = `file://${join(dir, 'cache')}`;
  nix(['nix', '--extra-experimental-features', 'nix-command', 'copy', '--to', url, storePath, ...NO_CACHE]);
  return { url, publicKey: readFileSync(publicFile, 'utf8').trim() };
}

export function newKeyPublic(dir: string, keyName: string): string {
  nix(['nix-store', '--generate-binary-cache-key', keyName, join(dir, `${keyName}.sk`), join(dir, `${keyName}.pk`)]);
  return readFileSync(join(dir, `${keyName}.pk`), 'utf8').trim();
}

/**
 * An environment whose Nix uses a separate store under root (a chroot store), so that
 * substitution really happens although the path exists in the machine's own store.
 */
export function separateStoreEnv(root: string, home: string): NodeJS.ProcessEnv {
  return { ...process.env, NIX_CONFIG: `store = local?root=${root}`, HOME: home, XDG_CACHE_HOME: join(home, '.cache') };
}
