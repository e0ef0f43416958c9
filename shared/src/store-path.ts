// Nix's base-32 alphabet omits e, o, u and t so that hashes never spell words.
const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';
const STORE_DIR = '/nix/store';
const STORE_PATH = new RegExp(`^${STORE_DIR}/([${NIX_BASE32}]{32})-([A-Za-z0-9+\\-._?=]+)$`);

export function isStorePath(value: string): boolean {
  const match = STORE_PATH.exec(value);
  if (!match) return false;
  const name = match[2]!;
  // Nix refuses names starting with a dot and names longer than 211 characters.
  return !name.startsWith('.') && name.length <= 211;
}

/** Explains why a string is not a store path, or returns null when it is one. */
export function storePathProblem(value: string): string | null {
  if (isStorePath(value)) return null;
  if (!value.startsWith(`${STORE_DIR}/`)) return `must start with ${STORE_DIR}/`;
  const base = value.slice(STORE_DIR.length + 1);
  if (base.includes('/')) return 'must name a top-level store path, not a file inside one';
  const hash = base.slice(0, 32);
  if (hash.length < 32 || [...hash].some((c) => !NIX_BASE32.includes(c))) {
    return 'must have a 32-character Nix base-32 hash';
  }
  return 'has an invalid name after the hash';
}

/** "abcd1234-nixos-system-web-24.05" → { hash, name } for short display. */
export function splitStorePath(path: string): { hash: string; name: string } {
  const base = path.slice(STORE_DIR.length + 1);
  return { hash: base.slice(0, 32), name: base.slice(33) };
}
