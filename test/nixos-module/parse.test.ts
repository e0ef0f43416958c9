import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nixInstantiate, repoRoot } from './nix.js';

const SKIPPED_DIRS = new Set(['node_modules', '.git', 'dist']);

function nixFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return SKIPPED_DIRS.has(entry.name) ? [] : nixFiles(path);
    return entry.name.endsWith('.nix') ? [path] : [];
  });
}

describe('Nix files', () => {
  const files = nixFiles(repoRoot).map((file) => relative(repoRoot, file));

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
