import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { SHOAL_VERSION } from '../../shared/src/version.js';

it('reports the version package.json gives', () => {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  expect(SHOAL_VERSION).toBe(pkg.version);
});
