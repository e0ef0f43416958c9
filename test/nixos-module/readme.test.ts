import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SKIP_WITHOUT_LIB, evalJson, nixpkgsLib, repoRoot } from './nix.js';

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

interface OptionDoc {
  name: string;
  default: string | null;
}

/** Option table rows of nixos-module/README.md, by full option name. */
function readmeRows(): Map<string, string> {
  const readme = readFileSync(join(repoRoot, 'nixos-module/README.md'), 'utf8');
  const rows = new Map<string, string>();
  let prefix: string | undefined;
  for (const line of readme.split('\n')) {
    const heading = /^## Options: `(services\.[a-z-]+)`/.exec(line);
    if (heading) prefix = heading[1];
    else if (line.startsWith('## ')) prefix = undefined;
    const row = /^\| `([^`]+)` \|/.exec(line);
    if (prefix && row) rows.set(`${prefix}.${row[1]}`, line);
  }
  return rows;
}

describe.skipIf(!lib)('nixos-module/README.md', () => {
  const options = lib ? evalJson<OptionDoc[]>({}, 'optionDocs') : [];
  const rows = readmeRows();

  it('lists every option the modules declare, and no other', () => {
    expect([...rows.keys()].sort()).toEqual(options.map((o) => o.name).sort());
  });

  it.each(options.map((o) => [o.name, o.default] as const))('gives the default of %s as %s', (name, value) => {
    const cells = (rows.get(name) ?? '').split(' | ');
    expect(cells[2]).toContain(value === null ? '—' : `\`${value}\``);
  });
});
