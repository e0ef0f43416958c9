import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const evalFile = join(repoRoot, 'test/nixos-module/eval.nix');

// The default cache is unreachable here and every nix call would wait for it.
const NIX_OPTIONS = ['--option', 'substituters', ''];

export type NixResult = { ok: true; stdout: string } | { ok: false; stderr: string };

export function nixInstantiate(args: string[]): NixResult {
  const run = spawnSync('nix-instantiate', [...NIX_OPTIONS, ...args], { encoding: 'utf8', cwd: repoRoot });
  if (run.error) throw run.error;
  if (run.status !== 0) return { ok: false, stderr: run.stderr };
  return { ok: true, stdout: run.stdout };
}

/**
 * A checkout of nix-community/nixpkgs.lib (the directory holding lib/), from NIXPKGS_LIB;
 * undefined when unset, so evaluation tests can skip and say why. Made absolute here because
 * Nix refuses to import a relative string path.
 */
export function nixpkgsLib(): string | undefined {
  const given = process.env.NIXPKGS_LIB;
  if (!given) return undefined;
  const dir = resolve(given);
  if (!existsSync(join(dir, 'lib/default.nix'))) {
    throw new Error(`NIXPKGS_LIB=${given} does not hold lib/default.nix; point it at a nixpkgs.lib checkout (the directory holding lib/)`);
  }
  return dir;
}

export const SKIP_WITHOUT_LIB =
  'NIXPKGS_LIB is unset: skipping the NixOS module evaluation tests (point it at a checkout of nix-community/nixpkgs.lib)';

/** Evaluates one projection of test/nixos-module/eval.nix under the given NixOS configuration. */
export function evalModules(config: object, attr: string, extraModuleFile?: string): NixResult {
  const lib = nixpkgsLib();
  if (!lib) throw new Error(SKIP_WITHOUT_LIB);
  return nixInstantiate([
    '--eval',
    '--strict',
    '--json',
    evalFile,
    '--argstr',
    'nixpkgsLib',
    lib,
    '--argstr',
    'configJson',
    JSON.stringify(config),
    ...(extraModuleFile ? ['--arg', 'extraModule', extraModuleFile] : []),
    '-A',
    attr,
  ]);
}

export function evalJson<T = unknown>(config: object, attr: string): T {
  const result = evalModules(config, attr);
  if (!result.ok) throw new Error(`evaluating ${attr} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

export function failedAssertions(config: object): string[] {
  return evalJson<string[]>(config, 'failedAssertions');
}
