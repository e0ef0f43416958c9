import * as z from 'zod';
import { HostName, StorePath } from './protocol.js';

/**
 * What a release changes, read from the binary cache: per host (the closure it runs now against
 * its target), across the fleet, and whether the cache is ready to serve every target path.
 */

/**
 * One package's change, grouped as `nix store diff-closures` groups store paths: outputs of one
 * package ("openssl-3.3.1", "openssl-3.3.1-dev") under its name ("openssl"), by version.
 * added: only in the target; removed: only in the current system; changed: versions differ;
 * rebuilt: the same versions, other store paths (a dependency changed), shown when its size moved.
 */
export const PackageChangeKind = z.enum(['added', 'removed', 'changed', 'rebuilt']);
export type PackageChangeKind = z.infer<typeof PackageChangeKind>;

export const PackageChange = z.object({
  name: z.string(),
  kind: PackageChangeKind,
  /** Versions only the current closure has ("" for a path without a version). */
  before: z.array(z.string()),
  /** Versions only the target closure has. */
  after: z.array(z.string()),
  /** NAR bytes of all the package's paths in the target minus in the current closure. */
  sizeDelta: z.number().int(),
  /** A kernel change: the host runs the old one until it reboots. */
  reboot: z.boolean(),
});
export type PackageChange = z.infer<typeof PackageChange>;

/**
 * ok: both closures read; current-unknown: the host never reported what it runs;
 * current-not-in-cache: what it runs is not in the cache (built elsewhere, or garbage-collected
 * there): the diff lists the whole target as added; target-incomplete: part of the target closure
 * could not be read, so sizes and the diff cover only what could.
 */
export const HostDiffStatus = z.enum(['ok', 'up-to-date', 'current-unknown', 'current-not-in-cache', 'target-incomplete']);
export type HostDiffStatus = z.infer<typeof HostDiffStatus>;

export const HostDiff = z.object({
  host: HostName,
  current: StorePath.nullable(),
  target: StorePath,
  status: HostDiffStatus,
  /** What that status means for this host, in a sentence; null when ok. */
  note: z.string().nullable(),
  changes: z.array(PackageChange),
  /** Target paths the host does not have (not in its current closure). */
  newPaths: z.number().int().nonnegative(),
  /** Compressed bytes (narinfo FileSize) of those paths: what the host downloads. */
  downloadBytes: z.number().int().nonnegative(),
  /** Their unpacked size (narinfo NarSize). */
  downloadNarBytes: z.number().int().nonnegative(),
  /** NAR bytes of the current closure; null when it could not be read. */
  closureBytesBefore: z.number().int().nonnegative().nullable(),
  closureBytesAfter: z.number().int().nonnegative(),
  pathsBefore: z.number().int().nonnegative().nullable(),
  pathsAfter: z.number().int().nonnegative(),
  reboot: z.boolean(),
  /** The host runs something Shoal did not put there (see HostStatus.drift). */
  drifted: z.boolean(),
});
export type HostDiff = z.infer<typeof HostDiff>;

/** One package change across the fleet: "linux 6.12.9 → 6.18.1 on 214 hosts (reboot)". */
export const FleetPackageChange = PackageChange.omit({ sizeDelta: true }).extend({ hosts: z.number().int().positive() });
export type FleetPackageChange = z.infer<typeof FleetPackageChange>;

/** Hosts whose change sets are identical (same packages, same versions), so one diff describes them all. */
export const ChangeGroup = z.object({
  hosts: z.array(HostName),
  changes: z.array(PackageChange),
  downloadBytes: z.number().int().nonnegative(),
});
export type ChangeGroup = z.infer<typeof ChangeGroup>;

/** A host's diff inside a fleet diff: its changes are those of `groups[group]` (hosts moving alike share one list). */
export const FleetHostDiff = HostDiff.omit({ changes: true }).extend({ group: z.number().int().nonnegative() });
export type FleetHostDiff = z.infer<typeof FleetHostDiff>;

export const FleetDiff = z.object({
  hosts: z.number().int().nonnegative(),
  /** Most hosts first. */
  packages: z.array(FleetPackageChange),
  /** Sum of every host's download. */
  downloadBytes: z.number().int().nonnegative(),
  largestDownload: z.object({ host: HostName, bytes: z.number().int().nonnegative() }).nullable(),
  rebootHosts: z.number().int().nonnegative(),
  upToDate: z.number().int().nonnegative(),
  /** Hosts whose current system is unknown or not in the cache (their diff lists the whole target). */
  incomplete: z.array(HostName),
  drifted: z.array(HostName),
  /** Largest group first. */
  groups: z.array(ChangeGroup),
  perHost: z.array(FleetHostDiff),
});
export type FleetDiff = z.infer<typeof FleetDiff>;

/** Why a target path cannot be served to the hosts: absent from every cache, or present but not signed by a key they trust. */
export const PreflightProblemKind = z.enum(['missing', 'unsigned', 'untrusted-key', 'bad-signature', 'unreadable']);
export type PreflightProblemKind = z.infer<typeof PreflightProblemKind>;

export const PreflightProblem = z.object({
  path: StorePath,
  kind: PreflightProblemKind,
  detail: z.string(),
  /** Hosts whose target closure contains the path. */
  hosts: z.array(HostName),
});
export type PreflightProblem = z.infer<typeof PreflightProblem>;

/**
 * passed: every path of every target closure is in a configured cache, signed by a trusted key.
 * failed: problems lists each bad path and the hosts it affects. not-configured: the controller
 * reads no binary cache, so nothing was checked.
 */
export const PreflightResult = z.object({
  outcome: z.enum(['passed', 'failed', 'not-configured']),
  hosts: z.number().int().nonnegative(),
  /** Distinct store paths checked (shared paths once). */
  paths: z.number().int().nonnegative(),
  problems: z.array(PreflightProblem),
  durationMs: z.number().nonnegative(),
});
export type PreflightResult = z.infer<typeof PreflightResult>;
