import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { prepareFixtures, STANDARD_SYSTEMS, type LabFixtures } from './fixtures.js';
import { pidAlive } from './pids.js';

const SOURCES = ['systems.nix', 'build-toplevel.sh', 'switch-to-configuration.sh'];

/** Changes whenever what the fixtures would contain changes. */
function fixturesHash(): string {
  const hash = createHash('sha256').update(JSON.stringify(STANDARD_SYSTEMS));
  for (const file of SOURCES) hash.update(readFileSync(fileURLToPath(new URL(`./${file}`, import.meta.url))));
  return hash.digest('hex').slice(0, 16);
}

function usable(fixtures: LabFixtures): boolean {
  const narinfo = (dir: string, path: string) => join(dir, `${path.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`);
  return Object.entries(fixtures.systems).every(([key, system]) => {
    const cacheDir = key === 'untrusted' ? fixtures.untrustedCache.dir : fixtures.cache.dir;
    return existsSync(system.path) && existsSync(narinfo(cacheDir, system.path));
  });
}

async function readFixtures(file: string): Promise<LabFixtures | null> {
  try {
    const fixtures = JSON.parse(await readFile(file, 'utf8')) as LabFixtures;
    return usable(fixtures) ? fixtures : null;
  } catch {
    return null;
  }
}

/**
 * The standard fixtures without a vitest globalSetup: built by whichever test worker asks
 * first (the others wait on a lock file), kept under /tmp/shoal-lab-fixtures/<content hash>
 * and reused by later runs as long as the store paths and the cache are intact.
 */
export async function ensureFixtures(root = join(tmpdir(), 'shoal-lab-fixtures')): Promise<LabFixtures> {
  const dir = join(root, fixturesHash());
  const file = join(dir, 'fixtures.json');
  const lock = `${dir}.lock`;
  await mkdir(root, { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    const ready = await readFixtures(file);
    if (ready) return ready;
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
    } catch {
      const owner = Number(await readFile(lock, 'utf8').catch(() => ''));
      if (owner && !pidAlive(owner)) await rm(lock, { force: true });
      if (Date.now() > deadline) throw new Error(`lab fixtures: gave up waiting for process ${owner} to build ${dir} (lock ${lock})`);
      await sleep(200);
      continue;
    }
    try {
      const fixtures = await prepareFixtures(dir);
      await writeFile(`${file}.tmp`, JSON.stringify(fixtures, null, 2));
      await rename(`${file}.tmp`, file);
      return fixtures;
    } finally {
      await rm(lock, { force: true });
    }
  }
}
