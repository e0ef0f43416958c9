import { readFileSync } from 'node:fs';
import { nodeEd25519 } from '../../shared/src/ed25519.js';
import { parseSecretKey, type NamedSecretKey } from '../../shared/src/keys.js';
import { PROTOCOL_VERSION, type ReleaseSource } from '../../shared/src/protocol.js';
import { signReleaseBundle, type ReleaseBuildHost, type ReleaseBundle } from '../../shared/src/release-statement.js';
import type { ReleaseKey } from './controller.js';

/**
 * CI's side of a two-key lab, for tests that need many releases quickly: what `shoal release
 * sign` makes from a build, without running Nix (the systems are lab fixtures already in the
 * cache). The pipeline itself, flake to hosts, is tested end to end in test/e2e/trust-pipeline.
 */

/** The secret half of a lab key file (what CI, or an attacker who stole the file, holds). */
export function loadKey(key: ReleaseKey): NamedSecretKey {
  return parseSecretKey(readFileSync(key.file, 'utf8'));
}

/** What `shoal release sign` makes from a build of `hosts`: one statement per host, signed by `key` at `floor`. */
export function signBuild(
  key: NamedSecretKey,
  name: string,
  hosts: ReadonlyArray<{ host: string; storePath: string; facts?: ReleaseBuildHost['facts'] }>,
  options: { floor: number; source: ReleaseSource; createdAt: string },
): ReleaseBundle {
  return signReleaseBundle(
    {
      protocol: PROTOCOL_VERSION,
      kind: 'shoal-release-build',
      name,
      description: '',
      source: options.source,
      createdAt: options.createdAt,
      hosts: hosts.map((h) => ({ host: h.host, storePath: h.storePath, facts: h.facts ?? null })),
    },
    key,
    options.floor,
    nodeEd25519,
  );
}

/** A release bundle signed with `key`: host → store path, at `floor`, made now. */
export function signedBundle(
  name: string,
  hosts: Record<string, string>,
  key: NamedSecretKey,
  options: { floor?: number; revision?: string | null; createdAt?: Date } = {},
): ReleaseBundle {
  return signBuild(
    key,
    name,
    Object.entries(hosts).map(([host, storePath]) => ({ host, storePath })),
    {
      floor: options.floor ?? 0,
      source: { revision: options.revision ?? null, flakeLockHash: null },
      createdAt: (options.createdAt ?? new Date()).toISOString(),
    },
  );
}
