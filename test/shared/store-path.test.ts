import { describe, expect, it } from 'vitest';
import { isHostName } from '../../shared/src/names.js';
import { isStorePath, storePathProblem } from '../../shared/src/store-path.js';

const HASH = '0c9m7ql1vmh3yw8g4dzpb6gdf8vmfz1w';

describe('store paths', () => {
  it('accepts a top-level store path', () => {
    expect(isStorePath(`/nix/store/${HASH}-nixos-system-web-24.05`)).toBe(true);
  });

  it.each([
    ['/tmp/x', 'must start with /nix/store/'],
    [`/nix/store/${HASH}-sys/bin/switch-to-configuration`, 'not a file inside one'],
    ['/nix/store/eeee7ql1vmh3yw8g4dzpb6gdf8vmfz1w-sys', '32-character Nix base-32 hash'],
    [`/nix/store/${HASH}-`, 'invalid name'],
    [`/nix/store/${HASH}-.hidden`, 'invalid name'],
    [`/nix/store/${HASH}-a b`, 'invalid name'],
  ])('refuses %s and says why', (path, why) => {
    expect(isStorePath(path)).toBe(false);
    expect(storePathProblem(path)).toContain(why);
  });
});

describe('host names', () => {
  it.each(['web-1', 'a', 'db01'])('accepts %s', (name) => expect(isHostName(name)).toBe(true));
  it.each(['-web', 'Web', 'web_1', 'a'.repeat(64), ''])('refuses %j', (name) => expect(isHostName(name)).toBe(false));
});
