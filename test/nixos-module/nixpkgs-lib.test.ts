import { relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SKIP_WITHOUT_LIB, evalJson, nixpkgsLib } from './nix.js';

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

describe.skipIf(!lib)('NIXPKGS_LIB', () => {
  const given = process.env.NIXPKGS_LIB;
  afterEach(() => {
    process.env.NIXPKGS_LIB = given;
  });

  it('may be relative to the directory the tests run in, as a developer types it', () => {
    process.env.NIXPKGS_LIB = relative(process.cwd(), lib!) || '.';
    expect(evalJson<string[]>({}, 'etc')).toEqual([]);
  });

  it('names the variable and what it must hold when it points elsewhere', () => {
    process.env.NIXPKGS_LIB = '/nonexistent/nixpkgs-lib';
    expect(() => nixpkgsLib()).toThrow(/NIXPKGS_LIB=\/nonexistent\/nixpkgs-lib does not hold lib\/default\.nix/);
  });
});
