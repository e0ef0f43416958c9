import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runOk } from './run.js';
import { ipCommand, type Fault } from './systems.js';

/** One host of a lab flake: what its system is (see systems.ts). */
export interface LabFlakeHost {
  fault?: Fault;
  label?: string;
  kernel?: string;
  switchInhibitors?: string;
}

export interface LabFlakeOptions {
  hosts: Record<string, LabFlakeHost>;
  /** Commit the flake in a fresh git repository (its revision is the release's source). */
  git?: boolean;
  /** Copy flake.lock (a flake without inputs needs none; CI flakes have one). */
  lock?: boolean;
}

const FILES = ['flake.nix', 'systems.nix', 'build-toplevel.sh', 'switch-to-configuration.sh'];

function nixSystem(): string {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch as string];
  if (!arch || process.platform !== 'linux') throw new Error(`the lab flake has no Nix system for ${process.platform}/${process.arch}`);
  return `${arch}-linux`;
}

/**
 * Writes the lab flake (test/lab/flake.nix and the files it imports) into `dir` with these
 * hosts and this machine's system, so a test can build a release from a flake of its own.
 * Returns `dir`, the revision when `git` was asked for, or null.
 */
export async function writeLabFlake(dir: string, options: LabFlakeOptions): Promise<{ dir: string; revision: string | null }> {
  await mkdir(dir, { recursive: true });
  const files = options.lock === false ? FILES : [...FILES, 'flake.lock'];
  for (const file of files) await copyFile(fileURLToPath(new URL(`./${file}`, import.meta.url)), join(dir, file));
  const hosts = Object.fromEntries(
    Object.entries(options.hosts).map(([name, h]) => [name, { fault: h.fault ?? 'ok', label: h.label ?? name, kernel: h.kernel ?? '6.6.0-lab', ...(h.switchInhibitors ? { switchInhibitors: h.switchInhibitors } : {}) }]),
  );
  await writeFile(join(dir, 'flake-hosts.json'), `${JSON.stringify({ system: nixSystem(), ipCommand: ipCommand(), hosts }, null, 2)}\n`);
  if (!options.git) return { dir, revision: null };
  const env = { ...process.env, GIT_AUTHOR_NAME: 'lab', GIT_AUTHOR_EMAIL: 'lab@example.org', GIT_COMMITTER_NAME: 'lab', GIT_COMMITTER_EMAIL: 'lab@example.org' };
  await runOk('git', ['init', '--quiet', dir], { env });
  await runOk('git', ['-C', dir, 'add', '--all'], { env });
  await runOk('git', ['-C', dir, 'commit', '--quiet', '--message', 'lab flake'], { env });
  return { dir, revision: (await runOk('git', ['-C', dir, 'rev-parse', 'HEAD'], { env })).trim() };
}
