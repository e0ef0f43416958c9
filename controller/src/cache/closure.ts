import type { Narinfo } from './narinfo.js';
import type { BinaryCacheReader, PathLookup } from './reader.js';

export type UnreadablePath = Exclude<PathLookup, { state: 'trusted' }>;

/** A closure as the cache describes it: every path reached through trusted narinfos, and those that could not be read. */
export interface Closure {
  root: string;
  paths: Map<string, Narinfo>;
  /** Paths whose narinfo is missing, untrusted or unreadable. Their references are not followed: nothing vouches for them. */
  unreadable: Map<string, UnreadablePath>;
}

/** Walks References from `root`, a level at a time, every path of a level requested at once (the reader bounds the concurrency). */
export async function readClosure(reader: BinaryCacheReader, root: string): Promise<Closure> {
  const paths = new Map<string, Narinfo>();
  const unreadable = new Map<string, UnreadablePath>();
  const seen = new Set<string>([root]);
  let level = [root];
  while (level.length > 0) {
    const lookups = await Promise.all(level.map((path) => reader.lookup(path)));
    const next: string[] = [];
    level.forEach((path, i) => {
      const lookup = lookups[i]!;
      if (lookup.state !== 'trusted') {
        unreadable.set(path, lookup);
        return;
      }
      paths.set(path, lookup.narinfo);
      for (const reference of lookup.narinfo.references) {
        if (!seen.has(reference)) {
          seen.add(reference);
          next.push(reference);
        }
      }
    });
    level = next;
  }
  return { root, paths, unreadable };
}

/** Closures of many roots, each distinct root read once (a thousand hosts on one system cost one walk). */
export class ClosureCache {
  private readonly closures = new Map<string, Promise<Closure>>();

  constructor(private readonly reader: BinaryCacheReader) {}

  get(root: string): Promise<Closure> {
    let closure = this.closures.get(root);
    if (!closure) {
      closure = readClosure(this.reader, root);
      this.closures.set(root, closure);
    }
    return closure;
  }
}
