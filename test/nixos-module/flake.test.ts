import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SKIP_WITHOUT_LIB, nixpkgsLib, repoRoot } from './nix.js';

// The repository's flake, checked by the real `nix flake check` with nixpkgs replaced by
// fake-nixpkgs/ (real lib, stub NixOS options and pkgs). Nix reads the flake from git, so it
// sees committed and staged files only.

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

const fakeNixpkgs = mkdtempSync(join(tmpdir(), 'shoal-fake-nixpkgs-'));
afterAll(() => rmSync(fakeNixpkgs, { recursive: true, force: true }));
cpSync(join(repoRoot, 'test/nixos-module/fake-nixpkgs/flake.nix'), join(fakeNixpkgs, 'flake.nix'));
cpSync(join(repoRoot, 'test/nixos-module/stubs'), join(fakeNixpkgs, 'stubs'), { recursive: true });

function nixFlake(args: string[]) {
  const run = spawnSync(
    'nix',
    [
      '--extra-experimental-features',
      'nix-command flakes',
      ...args,
      '--no-write-lock-file',
      '--override-input',
      'nixpkgs',
      `path:${fakeNixpkgs}`,
      '--override-input',
      'nixpkgs/nixpkgs-lib',
      `path:${lib}`,
      // Nothing may be fetched: the inputs are local.
      '--option',
      'substituters',
      '',
    ],
    { cwd: repoRoot, encoding: 'utf8' },
  );
  if (run.error) throw run.error;
  return run;
}

describe.skipIf(!lib)('flake.nix', () => {
  it('passes nix flake check: nixosModules.default is a module, and the module checks evaluate with no failed assertion', () => {
    const run = nixFlake(['flake', 'check', '--no-build', '.']);
    expect({ status: run.status, error: run.stderr.split('\n').filter((l) => l.startsWith('error')) }).toEqual({
      status: 0,
      error: [],
    });
  });

  it('has a check evaluating each module on every system it builds for', () => {
    const run = nixFlake(['eval', '--json', '.#checks', '--apply', 'builtins.mapAttrs (_: builtins.attrNames)']);
    expect(run.stderr).not.toMatch(/^error/m);
    expect(JSON.parse(run.stdout)).toEqual({
      'x86_64-linux': ['agent-module', 'controller-module'],
      'aarch64-linux': ['agent-module', 'controller-module'],
    });
  });
});
