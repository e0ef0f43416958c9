import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/**
 * Runs a TypeScript entry point under Node + tsx with the open-files limit raised to the hard
 * limit (10,000 sockets need 10,000 descriptors; many systems default to 1,024). `exec` keeps the
 * pid, so /proc/<pid> of the returned child is the Node process itself.
 */
export function spawnTs(entry: string, args: readonly string[], options: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[] } = {}): ChildProcess {
  const node = [process.execPath, ...(options.nodeArgs ?? []), '--import', 'tsx', entry, ...args];
  return spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...node], {
    cwd: REPO_ROOT,
    stdio: options.stdio ?? ['ignore', 'inherit', 'inherit'],
    env: options.env ?? process.env,
  });
}
