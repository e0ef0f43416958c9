import { createHash } from 'node:crypto';
import type { LabPackage } from './systems.js';

/**
 * Package sets for two lab systems whose closures look like two generations of one NixOS host:
 * a few hundred paths named as nixpkgs names them (name-version, with -dev/-bin/-man/-modules
 * outputs), referencing each other, almost all shared. `next` changes what a typical update
 * changes (see REALISTIC_CHANGES), so closure diffs have something real to find. Deterministic:
 * the same call gives the same store paths.
 */

/** Core packages: [name, version, extra outputs]. Most others reference a few of them. */
const CORE: ReadonlyArray<readonly [string, string, readonly string[]]> = [
  ['glibc', '2.39-52', ['bin', 'dev']],
  ['zlib', '1.3.1', ['dev']],
  ['openssl', '3.3.1', ['bin', 'dev']],
  ['linux', '6.12.9', ['modules']],
  ['systemd', '256.8', ['dev', 'man']],
  ['bash', '5.2p32', ['man']],
  ['coreutils', '9.5', ['info']],
  ['curl', '8.9.1', ['bin', 'dev']],
  ['nix', '2.24.10', ['man']],
  ['nano', '8.0', []],
  ['util-linux', '2.39.4', ['bin', 'lib']],
  ['dbus', '1.14.10', ['lib']],
  ['perl', '5.40.0', []],
  ['python3', '3.12.7', []],
  ['gcc', '13.3.0', ['lib']],
  ['ncurses', '6.4.20221231', ['dev']],
  ['sqlite', '3.46.1', ['bin']],
  ['nginx', '1.26.2', []],
  ['iproute2', '6.11.0', []],
  ['kmod', '31', []],
];

/** Leaf-ish packages generated around the core: realistic names, stable versions. */
const STEMS = ['lib', 'python3.12-', 'perl5.40.0-', 'xorg-', 'gst-plugins-', 'haskell-', 'node-', 'go-', 'rust-', 'font-'];
const WORDS = [
  'attr', 'acl', 'audit', 'brotli', 'bzip2', 'cairo', 'expat', 'ffi', 'gmp', 'gnutls', 'icu', 'idn2', 'jansson', 'keyutils',
  'kmod-blacklist', 'lz4', 'mpfr', 'nghttp2', 'pcre2', 'readline', 'seccomp', 'ssh2', 'tasn1', 'unistring', 'xml2', 'xxhash',
  'yaml', 'zstd', 'requests', 'urllib3', 'certifi', 'idna', 'cryptography', 'cffi', 'six', 'packaging',
];

function sizeOf(name: string): number {
  // 2-40 KB, from the name, so a package keeps its size across generations unless it changes.
  return 2_000 + (createHash('sha256').update(name).digest().readUInt32BE(0) % 38_000);
}

/** A bump of the last number of a version ("3.3.1" → "3.3.2"), or the version given. */
export interface RealisticChanges {
  /** name → new version. */
  bump: Readonly<Record<string, string>>;
  added: readonly (readonly [string, string])[];
  removed: readonly string[];
}

/** What `next` changes relative to `base`: a kernel update (reboot), a security update, a few others. */
export const REALISTIC_CHANGES: RealisticChanges = {
  bump: { linux: '6.18.1', openssl: '3.3.2', systemd: '256.10', curl: '8.11.0' },
  added: [['htop', '3.3.0']],
  removed: ['nano'],
};

const NO_CHANGES: RealisticChanges = { bump: {}, added: [], removed: [] };

/**
 * The package set of one generation: about `size` paths. Packages reference glibc and one or two
 * core libraries, so a changed core library (openssl) changes the paths of what uses it too, as in
 * nixpkgs, while their names and versions stay.
 */
export function realisticPackages(options: { size?: number; changes?: RealisticChanges } = {}): LabPackage[] {
  const size = options.size ?? 240;
  const changes = options.changes ?? NO_CHANGES;
  const packages: LabPackage[] = [];
  const byName = new Map<string, string>();
  const core = [...CORE.filter(([name]) => !changes.removed.includes(name)), ...changes.added.map(([n, v]) => [n, v, []] as const)];
  for (const [name, version, outputs] of core) {
    const full = `${name}-${changes.bump[name] ?? version}`;
    // glibc references nothing; the rest glibc, and for a few, openssl or zlib.
    const deps = name === 'glibc' ? [] : [byName.get('glibc')!, ...(['curl', 'nix', 'nginx'].includes(name) ? [byName.get('openssl')!, byName.get('zlib')!] : [])];
    packages.push({ name: full, bytes: sizeOf(full), deps });
    for (const output of outputs) packages.push({ name: `${full}-${output}`, bytes: sizeOf(`${full}-${output}`), deps: [full] });
    byName.set(name, full);
  }
  const libs = ['zlib', 'ncurses', 'sqlite', 'python3', 'perl'].map((n) => byName.get(n)!);
  for (let i = 0; packages.length < size; i++) {
    const stem = STEMS[i % STEMS.length]!;
    const word = WORDS[Math.floor(i / STEMS.length) % WORDS.length]!;
    const round = Math.floor(i / (STEMS.length * WORDS.length));
    const name = `${stem}${word}${round > 0 ? round : ''}-${1 + (i % 7)}.${i % 13}.${i % 5}`;
    // One in fifteen uses openssl: its update rebuilds them (new paths, same versions).
    const lib = i % 15 === 0 ? byName.get('openssl')! : libs[i % libs.length]!;
    packages.push({ name, bytes: sizeOf(name), deps: [byName.get('glibc')!, lib] });
  }
  return packages;
}
