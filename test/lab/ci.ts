import { readFileSync } from 'node:fs';
import { nodeEd25519 } from '../../shared/src/ed25519.js';
import { parseSecretKey, type NamedSecretKey } from '../../shared/src/keys.js';
import { PROTOCOL_VERSION } from '../../shared/src/protocol.js';
import { signReleaseBundle, type ReleaseBundle } from '../../shared/src/release-statement.js';
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

/** A release bundle signed with `key`: host → store path, at `floor`. */
export function signedBundle(
  name: string,
  hosts: Record<string, string>,
  key: NamedSecretKey,
  options: { floor?: number; revision?: string | null; createdAt?: Date } = {},
): ReleaseBundle {
  return signReleaseBundle(
    {
      protocol: PROTOCOL_VERSION,
      kind: 'shoal-release-build',
      name,
      description: '',
      source: { revision: options.revision ?? null, flakeLockHash: null },
      createdAt: (options.createdAt ?? new Date()).toISOString(),
      hosts: Object.entries(hosts).map(([host, storePath]) => ({ host, storePath, facts: null })),
    },
    key,
    options.floor ?? 0,
    nodeEd25519,
  );
}
