/**
 * Store path names → package name, version and output, the way `nix store diff-closures` reads
 * them (so the two agree): a trailing "-<lower-case letters>" (or -lib32/-lib64) is the output
 * ("openssl-3.3.1-dev" → output "dev"); the version starts after the first "-" that is not
 * followed by a letter ("linux-6.12.9" → "linux" 6.12.9, "nixos-system-web-1-24.05" →
 * "nixos-system-web" 1-24.05). Like Nix's, it is a heuristic: "lab-sw" reads as package "lab",
 * output "sw".
 */
export interface PackageName {
  name: string;
  /** "" when the name carries none. */
  version: string;
  /** "" for the default output. */
  output: string;
}

const OUTPUT = /^(.*)-([a-z]+|lib32|lib64)$/s;
const LETTER = /[A-Za-z]/;

export function parsePackageName(storeName: string): PackageName {
  let rest = storeName;
  let output = '';
  const match = OUTPUT.exec(storeName);
  if (match) {
    rest = match[1]!;
    output = match[2]!;
  }
  for (let i = 0; i < rest.length - 1; i++) {
    if (rest[i] === '-' && !LETTER.test(rest[i + 1]!)) return { name: rest.slice(0, i), version: rest.slice(i + 1), output };
  }
  return { name: rest, version: '', output };
}

/** The store name of a path: "/nix/store/<hash>-openssl-3.3.1" → "openssl-3.3.1". */
export function storeName(path: string): string {
  return path.slice('/nix/store/'.length + 33);
}

/** Packages whose change takes effect only after a reboot: the kernel (its modules are its outputs). */
export function needsReboot(name: string): boolean {
  return name === 'linux' || /^linux[_-](hardened|rt|zen|libre|xanmod|lqx|latest|testing)\b/.test(name) || name === 'lab-kernel';
}
