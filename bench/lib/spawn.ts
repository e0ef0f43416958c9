import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
  const node = [process.execPath, ...(options.nodeArgs ?? []), '--import', 'tsx', entry, ...args];
  return spawn('/bin/sh', ['-c', `${RAISE_OPEN_FILES}; exec "$@"`, 'sh', ...node], {
    cwd: REPO_ROOT,
    stdio: options.stdio ?? ['ignore', 'inherit', 'inherit'],
    env: options.env ?? process.env,
  });
}
