import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nixInstantiate, repoRoot } from './nix.js';

/** The repository's .nix files, committed or not yet, leaving out what .gitignore lists. */
function nixFiles(): string[] {
  const run = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '--', '*.nix'], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`git ls-files failed: ${run.stderr}`);
  return [...new Set(run.stdout.split('\n').filter((line) => line !== ''))].sort();
}

describe('Nix files', () => {
  const files = nixFiles();

  it('include the modules, the package and the flake', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'flake.nix',
        'nixos-module/default.nix',
        'nixos-module/agent.nix',
        'nixos-module/controller.nix',
        'nixos-module/package.nix',
      ]),
    );
  });

  it.each(files)('%s parses', (file) => {
    const result = nixInstantiate(['--parse', file]);
    expect(result.ok ? '' : result.stderr).toBe('');
  });
});
