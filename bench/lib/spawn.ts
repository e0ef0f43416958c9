import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { NODE_ESM_BUNDLE } from '../../agent/build/bundle.js';
import type { Cleanup } from './cleanup.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/** Raises the hard open-files limit to 65,536 where it is lower and we may (root, outside a container that caps it), then the soft limit to the hard one. */
const RAISE_OPEN_FILES = 'h=$(ulimit -Hn); if [ "$h" != unlimited ] && [ "$h" -lt 65536 ]; then ulimit -Hn 65536 2>/dev/null; fi; ulimit -n "$(ulimit -Hn)" 2>/dev/null';

/** The open-files limit a process started by spawnTs gets. */
export function controllerOpenFilesLimit(): number {
  const out = spawnSync('/bin/sh', ['-c', `${RAISE_OPEN_FILES}; ulimit -n`], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
}

/**
 * Runs a TypeScript entry point under Node + tsx with the open-files limit raised to the hard
 * limit (10,000 sockets need 10,000 descriptors; many systems default to 1,024) (and the hard limit to
 * 65,536 where allowed: 25,000 agents need more than this machine's 20,000). `exec` keeps the pid, so /proc/<pid> of the returned child is the Node process itself.
 */
export function spawnTs(entry: string, args: readonly string[], options: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[] } = {}): ChildProcess {
  return spawnNode([...(options.nodeArgs ?? []), '--import', 'tsx', entry, ...args], options);
}

/** Node with `argv`, the open-files limit raised first (see spawnTs). */
function spawnNode(argv: readonly string[], options: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv }): ChildProcess {
  return spawn('/bin/sh', ['-c', `${RAISE_OPEN_FILES}; exec "$@"`, 'sh', process.execPath, ...argv], {
    cwd: REPO_ROOT,
    stdio: options.stdio ?? ['ignore', 'inherit', 'inherit'],
    env: options.env ?? process.env,
  });
}

const bundles = new Map<string, Promise<string>>();

/**
 * `entry` and what it imports as one ES module (esbuild), built once per benchmark run, for the
 * benchmark's own helper processes (the load generators). Run by plain Node they have no tsx
 * loader: Node 20 runs `module.register` hooks on a thread of their own, and twice in one day a
 * load generator started beside a PostgreSQL server and two controllers hung for good in its
 * first imports, its main thread waiting on that thread (a known class of hooks-thread deadlock,
 * nodejs/node#50948), so the benchmark waited forever.
 */
function bundled(entry: string, cleanup: Cleanup): Promise<string> {
  let file = bundles.get(entry);
  if (!file) {
    const outfile = join(cleanup.dir(mkdtempSync(join(tmpdir(), 'shoal-bench-bundle-'))), 'main.mjs');
    file = build({ ...NODE_ESM_BUNDLE, absWorkingDir: REPO_ROOT, entryPoints: [entry], outfile, logLevel: 'warning' }).then(() => outfile);
    bundles.set(entry, file);
  }
  return file;
}

/** Runs `entry` bundled (see bundled) under plain Node, with the open-files limit raised as spawnTs does. */
export async function spawnBundled(entry: string, args: readonly string[], cleanup: Cleanup, options: { stdio?: StdioOptions } = {}): Promise<ChildProcess> {
  return cleanup.child(spawnNode([await bundled(entry, cleanup), ...args], options));
}
