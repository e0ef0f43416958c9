import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPostgres } from '../../test/lab/postgres.js';
import type { Cleanup } from './cleanup.js';

/** Linux USER_HZ (see proc.ts). */
const CLOCK_TICKS = 100;

export interface BenchPostgres {
  /** The database URL without its password (what every replica gets as `--database`). */
  url: string;
  /** The password, in a file of mode 0600 (`--database-password-file`), as an operator would pass it. */
  passwordFile: string;
  /** CPU seconds of the server so far: the postmaster and its live backends, plus the backends it has reaped. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

function ticks(pid: number, fields: readonly number[]): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const values = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields.reduce((sum, field) => sum + Number(values[field]), 0);
  } catch {
    return 0; // A backend that just exited; its time moves to the postmaster's reaped-children fields.
  }
}

/**
 * A private PostgreSQL server for one benchmark run: the fleet lab's (Debian's package, run as the
 * `postgres` user, Unix socket only in a fresh temp directory; fsync and synchronous commit off,
 * as in the tests). Stopped and removed by the run, or by the bench Cleanup on failure or signal.
 */
export async function startBenchPostgres(dir: string, cleanup: Cleanup): Promise<BenchPostgres> {
  const server = await startPostgres();
  const resource = cleanup.resource({
    release: () => server.stop(),
    releaseSync: () => {
      for (const pid of server.processes()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      rmSync(server.dir, { recursive: true, force: true });
    },
  });
  const url = new URL(server.url);
  const password = decodeURIComponent(url.password);
  url.password = '';
  const passwordFile = join(dir, 'database-password');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  return {
    url: url.toString(),
    passwordFile,
    cpuSeconds: () => {
      const [postmaster, ...backends] = server.processes();
      if (postmaster === undefined) return 0;
      // utime, stime of each process; cutime, cstime of the postmaster: backends that have exited.
      const own = [postmaster, ...backends].reduce((sum, pid) => sum + ticks(pid, [11, 12]), 0);
      return (own + ticks(postmaster, [13, 14])) / CLOCK_TICKS;
    },
    stop: () => cleanup.releaseResource(resource),
  };
}
