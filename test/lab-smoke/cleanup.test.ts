import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { LabFixtures } from '../lab/fixtures.js';
import { Lab, REPO_ROOT, sweepStaleDirs } from '../lab/lab.js';
import { sweepStaleNetworks } from '../lab/network.js';
import { waitFor } from '../lab/wait.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

const netnsNames = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
const linkExists = (name: string) => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).includes(` ${name}:`);

/** Pids of `/bin/sleep <marker>` processes. */
function processesWith(marker: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv[0] === '/bin/sleep' && argv[1] === marker;
      } catch {
        return false;
      }
    })
    .map(Number);
}

const uniqueMarker = () => `${100000 + Math.floor(Math.random() * 800000)}.${process.pid}`;

describe('lab cleanup', () => {
  let fixtures: LabFixtures;
  beforeAll(async () => {
    fixtures = await labFixtures();
  });

  it('stops every process and removes namespaces, interfaces and the lab directory', async () => {
    const lab = await Lab.start({ fixtures, network: true });
    const markers = [uniqueMarker(), uniqueMarker()];
    const hosts = [await lab.addHost('clean-1'), await lab.addHost('clean-2')];
    hosts.forEach((host, i) => host.spawn('sleeper', ['/bin/sleep', markers[i]!]));
    await waitFor('both sleepers to run', () => markers.every((m) => processesWith(m).length === 1));
    const made = { dir: lab.dir, bridge: lab.bridge!.name, netns: hosts.map((h) => h.network!.netns) };
    expect(netnsNames()).toEqual(expect.arrayContaining(made.netns));

    await lab.cleanup();

    expect(markers.flatMap(processesWith)).toEqual([]);
    expect(netnsNames()).not.toEqual(expect.arrayContaining([made.netns[0]]));
    expect(netnsNames()).not.toEqual(expect.arrayContaining([made.netns[1]]));
    expect(linkExists(made.bridge)).toBe(false);
    expect(existsSync(made.dir)).toBe(false);
  });

  it('removes what a killed lab left behind, once its process is gone', async () => {
    const fixturesFile = join(fixtures.dir, `crash-fixtures-${process.pid}.json`);
    await writeFile(fixturesFile, JSON.stringify(fixtures));
    const marker = uniqueMarker();
    // pdeathsig: should this test die, the child must not outlive it.
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, '--import', 'tsx', fileURLToPath(new URL('./crash-child.ts', import.meta.url)), fixturesFile, marker], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const made = await new Promise<{ dir: string; netns: string; bridge: string }>((resolve, reject) => {
      child.stdout.setEncoding('utf8').once('data', (line: string) => resolve(JSON.parse(line)));
      child.once('exit', (code) => reject(new Error(`crash-child exited ${code} before reporting`)));
    });
    try {
      await waitFor('the sleeper to run', () => processesWith(marker).length === 1);
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((resolve) => child.once('exit', resolve));

    // Processes die with their parent (pdeathsig); namespaces and files stay until swept.
    await waitFor('the sleeper to die with the lab process', () => processesWith(marker).length === 0, { timeoutMs: 5_000 });
    // (A lab starting in a parallel test run may sweep them first: the same code, so also fine.)
    sweepStaleNetworks();
    sweepStaleDirs();

    expect(netnsNames()).not.toContain(made.netns);
    expect(linkExists(made.bridge)).toBe(false);
    expect(existsSync(made.dir)).toBe(false);
    await rm(fixturesFile, { force: true });
  });

  it('leaves namespaces of live lab processes alone (parallel workers)', async () => {
    const lab = await Lab.start({ fixtures, network: true });
    try {
      const host = await lab.addHost('clean-3');
      expect(sweepStaleNetworks()).not.toContain(`netns ${host.network!.netns}`);
      expect(sweepStaleDirs()).not.toContain(lab.dir);
      expect(netnsNames()).toContain(host.network!.netns);
      expect(existsSync(lab.dir)).toBe(true);
    } finally {
      await lab.cleanup();
    }
  });
});

