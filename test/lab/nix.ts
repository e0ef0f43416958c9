import { runOk, type RunOptions } from './run.js';

/**
 * Options every lab nix call passes: the default substituter (cache.nixos.org) is unreachable
 * here and would make each call wait for its timeout; builders run unsandboxed because the
 * lab systems use the machine's /bin.
 */
export const NIX_OFFLINE = ['--option', 'substituters', ''] as const;
export const NIX_BUILD_OPTIONS = [...NIX_OFFLINE, '--option', 'sandbox', 'false'] as const;
export const NIX_COMMAND = ['--extra-experimental-features', 'nix-command'] as const;

export function nix(args: readonly string[], options?: RunOptions): Promise<string> {
  return runOk('nix', [...NIX_COMMAND, ...args], options);
}

/** Closure of a path in the machine's own store, the path itself included. */
export async function closureOf(paths: readonly string[]): Promise<string[]> {
  const out = await runOk('nix-store', ['--query', '--requisites', ...paths]);
  return out.split('\n').filter(Boolean);
}
