import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CommandFailure } from '../../shared/src/protocol.js';
import { runCommand, type RunOptions, type RunResult } from './exec.js';
import { assertSafeSubstituters } from './substituters.js';

/**
 * The Nix operations the agent needs, all through the real Nix command-line tools. Closures
 * are verified by Nix itself: substituters and trusted-public-keys are always passed
 * explicitly (an empty list too, so a stray nix.conf cannot widen them) and require-sigs is
 * forced on.
 */

export interface NixOptions {
  stateDir: string;
  substituters: readonly string[];
  trustedPublicKeys: readonly string[];
  realiseTimeoutMs: number;
  commandTimeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

export type RealiseResult =
  | { ok: true; closureBytes: number | undefined; downloadedBytes: number | undefined; durationMs: number }
  | { ok: false; untrusted: boolean; failure: CommandFailure };

/** What Nix prints when a substitute is not signed by any trusted key (Nix 2.8 through 2.2x). */
export const UNTRUSTED_SUBSTITUTE = /is not signed by any of the keys in 'trusted-public-keys'|lacks a valid signature|no signature is trusted/;

export function gcRootPath(stateDir: string): string {
  return join(stateDir, 'gcroots', 'desired');
}

/**
 * The options every fetching Nix command gets. Throws (UnsafeSubstituterError) for a substituter
 * that would loosen Nix's signature checks: the config schema refuses those already, and this
 * is the last line, right where the URL would reach Nix.
 */
export function trustOptions(options: Pick<NixOptions, 'substituters' | 'trustedPublicKeys'>): string[] {
  assertSafeSubstituters(options.substituters);
  return [
    '--option', 'substituters', options.substituters.join(' '),
    '--option', 'trusted-public-keys', options.trustedPublicKeys.join(' '),
    '--option', 'require-sigs', 'true',
  ];
}

// Queries that must not consult a binary cache (they are about this host's store only).
const LOCAL_ONLY = ['--option', 'substituters', ''];

/**
 * Nix remembers "this path is not in that cache" for an hour by default (its negative narinfo
 * cache). A cache that was briefly missing a path (CI had not pushed it yet) would then fail
 * every retry for that hour without Nix even asking the cache again. The agent realises rarely
 * and each time because something is wanted now, so it always asks.
 */
export const ASK_CACHE_AGAIN = ['--option', 'narinfo-cache-negative-ttl', '0'];

interface PathInfo {
  path: string;
  narSize: number;
}

/** `nix path-info --json` is an array in Nix 2.8–2.18 and an object keyed by path from 2.19 on. */
export function parsePathInfo(stdout: string): PathInfo[] {
  const json: unknown = JSON.parse(stdout);
  const entries: Array<[string | undefined, unknown]> = Array.isArray(json)
    ? json.map((entry) => [undefined, entry])
    : Object.entries(json as Record<string, unknown>);
  return entries.flatMap(([key, value]) => {
    if (value === null || typeof value !== 'object') return [];
    const info = value as { path?: unknown; narSize?: unknown };
    const path = typeof info.path === 'string' ? info.path : key;
    if (!path || typeof info.narSize !== 'number') return [];
    return [{ path, narSize: info.narSize }];
  });
}

/**
 * The paths under Nix's "will be fetched" heading of a `--dry-run` (Nix 2.8 on: "this path
 * will be fetched (…):" or "these N paths will be fetched (…):", then one indented path per line).
 */
export function parseFetchPlan(stderr: string): Set<string> {
  const paths = new Set<string>();
  let inFetchList = false;
  for (const line of stderr.split('\n')) {
    if (/^\S/.test(line)) {
      inFetchList = /will be fetched/.test(line);
    } else if (inFetchList) {
      const path = line.trim();
      if (path.startsWith('/')) paths.add(path);
    }
  }
  return paths;
}

export class Nix {
  constructor(private readonly options: NixOptions) {
    assertSafeSubstituters(options.substituters);
  }

  private run(argv: string[], options: Pick<RunOptions, 'captureStdout' | 'captureStderr'> & { timeoutMs?: number } = {}): Promise<RunResult> {
    return runCommand(argv, { timeoutMs: this.options.commandTimeoutMs, ...options, env: this.options.env });
  }

  async isValid(storePath: string): Promise<boolean> {
    return (await this.run(['nix-store', '--check-validity', storePath, ...LOCAL_ONLY])).ok;
  }

  /**
   * Fetches the closure from the configured caches (Nix checks the signatures) and pins it with
   * an indirect GC root, so a garbage collection between realise and switch cannot delete it.
   */
  async realise(storePath: string): Promise<RealiseResult> {
    const root = gcRootPath(this.options.stateDir);
    await mkdir(join(this.options.stateDir, 'gcroots'), { recursive: true, mode: 0o700 });
    // What Nix itself plans to fetch, asked just before: the download is that set, however
    // recently the rest of the closure arrived (registration times are whole seconds, so
    // "registered since we started" miscounts a store filled in the same second).
    const toFetch = await this.pathsToFetch(storePath);
    const result = await this.run(
      ['nix-store', '--realise', storePath, '--add-root', root, '--indirect', ...trustOptions(this.options), ...ASK_CACHE_AGAIN],
      { timeoutMs: this.options.realiseTimeoutMs },
    );
    if (!result.ok) {
      return { ok: false, untrusted: UNTRUSTED_SUBSTITUTE.test(result.failure.outputTail), failure: result.failure };
    }
    const closure = await this.closure(storePath);
    if (!closure) return { ok: true, closureBytes: undefined, downloadedBytes: undefined, durationMs: result.durationMs };
    const closureBytes = closure.reduce((sum, p) => sum + p.narSize, 0);
    const downloadedBytes = toFetch && closure.filter((p) => toFetch.has(p.path)).reduce((sum, p) => sum + p.narSize, 0);
    return { ok: true, closureBytes, downloadedBytes, durationMs: result.durationMs };
  }

  /**
   * The store paths Nix would fetch from the caches to realise storePath (its `--dry-run` plan,
   * which it prints on stderr); undefined when Nix cannot say (the size is informative only).
   */
  async pathsToFetch(storePath: string): Promise<Set<string> | undefined> {
    const result = await this.run(['nix-store', '--realise', '--dry-run', storePath, ...trustOptions(this.options), ...ASK_CACHE_AGAIN], { captureStderr: true });
    return result.ok ? parseFetchPlan(result.stderr) : undefined;
  }

  /** Every path in the closure with its NAR size; undefined when Nix cannot say (the size is informative only). */
  async closure(storePath: string): Promise<PathInfo[] | undefined> {
    const result = await this.run(
      ['nix', '--extra-experimental-features', 'nix-command', 'path-info', '--json', '--recursive', storePath, ...LOCAL_ONLY],
      { captureStdout: true },
    );
    if (!result.ok) return undefined;
    try {
      return parsePathInfo(result.stdout);
    } catch {
      return undefined;
    }
  }

  /** Makes `storePath` the profile's current generation (and so, after `boot`, the boot default). */
  async setProfile(profile: string, storePath: string): Promise<RunResult> {
    // A fresh store (the lab's, a new install) may not have the profiles directory yet.
    await mkdir(dirname(profile), { recursive: true });
    return this.run(['nix-env', '--profile', profile, '--set', storePath, ...LOCAL_ONLY]);
  }
}
