import { isStorePath } from '../../../shared/src/store-path.js';

/** A narinfo as Nix's binary-cache protocol serves it at `<hash>.narinfo`: what the controller needs of it. */
export interface Narinfo {
  storePath: string;
  /** Full store paths (the file lists base names). */
  references: string[];
  /** "sha256:<nix base-32>", as the fingerprint needs it. */
  narHash: string;
  narSize: number;
  /** Compressed size of the file a host downloads; null when the cache did not say (then NarSize is the best guess). */
  fileSize: number | null;
  /** "keyname:base64" signatures. */
  sigs: string[];
}

export type NarinfoParse = { ok: true; narinfo: Narinfo } | { ok: false; problem: string };

const STORE_DIR = '/nix/store';
const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';
const SHA256_BASE32 = new RegExp(`^sha256:[${NIX_BASE32}]{52}$`);

/** Nix's base-32 (the alphabet without e, o, u, t; least significant bits first), for hashes given in hex or SRI form. */
function toNixBase32(bytes: Uint8Array): string {
  const length = Math.ceil((bytes.length * 8) / 5);
  let out = '';
  for (let n = length - 1; n >= 0; n--) {
    const bit = n * 5;
    const i = Math.floor(bit / 8);
    const j = bit % 8;
    const c = ((bytes[i]! >> j) | (i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0)) & 0x1f;
    out += NIX_BASE32[c];
  }
  return out;
}

/** NarHash in any form Nix writes (base-32, hex, SRI) → the base-32 form its fingerprint uses; null if not SHA-256. */
export function normaliseNarHash(text: string): string | null {
  if (SHA256_BASE32.test(text)) return text;
  const hex = /^sha256:([0-9a-f]{64})$/.exec(text);
  if (hex) return `sha256:${toNixBase32(Buffer.from(hex[1]!, 'hex'))}`;
  const sri = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(text);
  if (sri) return `sha256:${toNixBase32(Buffer.from(sri[1]!, 'base64'))}`;
  return null;
}

function size(fields: Map<string, string>, key: string): number | null {
  const text = fields.get(key);
  if (text === undefined) return null;
  return /^\d{1,15}$/.test(text) ? Number(text) : NaN;
}

/**
 * Parses a narinfo and checks it describes `expectedPath`: a cache answering for one hash with
 * another path's narinfo must not slip that path into a closure.
 */
export function parseNarinfo(text: string, expectedPath: string): NarinfoParse {
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(': ');
    if (colon <= 0) return { ok: false, problem: `malformed line ${JSON.stringify(line.slice(0, 60))}` };
    const key = line.slice(0, colon);
    const value = line.slice(colon + 2).trim();
    if (key === 'Sig') sigs.push(value);
    else fields.set(key, value);
  }
  const storePath = fields.get('StorePath');
  if (storePath !== expectedPath) return { ok: false, problem: `StorePath is ${JSON.stringify(storePath ?? null)}, expected ${expectedPath}` };
  const narHash = normaliseNarHash(fields.get('NarHash') ?? '');
  if (!narHash) return { ok: false, problem: `NarHash ${JSON.stringify(fields.get('NarHash') ?? null)} is not a SHA-256 hash` };
  const narSize = size(fields, 'NarSize');
  if (narSize === null || Number.isNaN(narSize)) return { ok: false, problem: 'NarSize is missing or not a number' };
  const fileSize = size(fields, 'FileSize');
  if (Number.isNaN(fileSize)) return { ok: false, problem: 'FileSize is not a number' };
  const references: string[] = [];
  for (const base of (fields.get('References') ?? '').split(' ').filter(Boolean)) {
    const path = `${STORE_DIR}/${base}`;
    if (!isStorePath(path)) return { ok: false, problem: `reference ${JSON.stringify(base)} is not a store path name` };
    references.push(path);
  }
  return { ok: true, narinfo: { storePath, references, narHash, narSize, fileSize, sigs } };
}

/** What Nix signs for a path: `1;<path>;<narHash>;<narSize>;<comma-separated full reference paths>` (references sorted, as Nix keeps them). */
export function narinfoFingerprint(narinfo: Narinfo): string {
  const references = [...narinfo.references].sort();
  return `1;${narinfo.storePath};${narinfo.narHash};${narinfo.narSize};${references.join(',')}`;
}

/** `/nix/store/<hash>-name` → `<hash>.narinfo`, the file a cache serves for it. */
export function narinfoFile(storePath: string): string {
  return `${storePath.slice(STORE_DIR.length + 1, STORE_DIR.length + 33)}.narinfo`;
}
