import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { ReleaseSource } from '../../../shared/src/protocol.js';
import { CliError } from './context.js';
import { NixError, nixErrorText, runNix } from './nix.js';

/** Where the systems of a release come from: an attribute of a flake, or a Nix file. */
export type SystemsSource = { kind: 'flake'; ref: string; attr: string; display: string } | { kind: 'file'; file: string; display: string };

const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

function insideGit(dir: string): boolean {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, '.git'))) return true;
    if (dirname(at) === at) return false;
  }
}

/**
 * `--flake PATH#ATTR` → what Nix is given. A local directory inside git stays a plain path, so
 * Nix reads it as git+file (tracked files only, with a revision when clean) exactly as
 * `nix build .#x` would; outside git it must be `path:` on some Nix versions.
 */
export function flakeSource(value: string): SystemsSource {
  const hash = value.indexOf('#');
  const refText = (hash < 0 ? value : value.slice(0, hash)) || '.';
  const attr = hash < 0 || hash === value.length - 1 ? 'nixosConfigurations' : value.slice(hash + 1);
  if (URL_SCHEME.test(refText)) return { kind: 'flake', ref: refText, attr, display: `${refText}#${attr}` };
  const dir = resolve(refText);
  if (!existsSync(join(dir, 'flake.nix'))) throw new CliError(`no flake.nix in ${dir} (--flake takes a directory or a flake URL, then #ATTR)`, 2);
  const ref = insideGit(dir) ? dir : `path:${dir}`;
  return { kind: 'flake', ref, attr, display: `${ref}#${attr}` };
}

export function fileSource(value: string): SystemsSource {
  const file = resolve(value);
  if (!existsSync(file)) throw new CliError(`--file ${value}: no such file`, 2);
  return { kind: 'file', file, display: file };
}

const FlakeMetadata = z.object({
  revision: z.string().optional(),
  path: z.string(),
  locked: z.object({ dir: z.string().optional() }).loose().optional(),
});

function sha256File(file: string): string | null {
  return existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : null;
}

function git(dir: string, args: string[]): string | null {
  const result = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return result.status === 0 ? result.stdout.trim() : null;
}

/**
 * The revision and lock hash a release records. For a flake, Nix's own metadata: the revision
 * is there only for a clean git tree, and flake.lock is read from the copy Nix evaluated.
 */
export async function sourceOf(source: SystemsSource, env: Record<string, string | undefined>): Promise<ReleaseSource> {
  if (source.kind === 'file') {
    const dir = dirname(source.file);
    const clean = git(dir, ['status', '--porcelain']) === '';
    return { revision: clean ? git(dir, ['rev-parse', 'HEAD']) : null, flakeLockHash: null };
  }
  let text: string;
  try {
    text = await runNix(['flake', 'metadata', '--json', '--no-write-lock-file', source.ref], { env });
  } catch (error) {
    if (error instanceof NixError) throw new CliError(`cannot read flake ${source.ref}:`, 1, nixErrorText(error).split('\n'));
    throw error;
  }
  const metadata = FlakeMetadata.parse(JSON.parse(text));
  return { revision: metadata.revision ?? null, flakeLockHash: sha256File(join(metadata.path, metadata.locked?.dir ?? '', 'flake.lock')) };
}
