import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Whether a process with this id exists (EPERM means it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let counter = 0;

/**
 * Names of lab namespaces, interfaces and directories carry the creating process id, so a
 * later run can tell leftovers of a crashed run (dead pid) from those of a parallel worker.
 */
export function uniqueSuffix(): string {
  counter += 1;
  return `${process.pid}-${counter}`;
}

/** Pids of the direct children of `pid`, from /proc (the kernel here lacks /proc/PID/task/PID/children). */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which is in parentheses and may contain spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return children;
}

/**
 * Removes the directories `<prefix><pid>-<n>` under `root` whose creating process is dead: what a
 * crashed or killed run left behind (a live pid is a parallel worker's, and is left alone).
 */
export function sweepDirsOfDeadProcesses(prefix: string, root: string): string[] {
  const removed: string[] = [];
  const pattern = new RegExp(`^${prefix}(\\d+)-\\d+$`);
  for (const entry of existsSync(root) ? readdirSync(root) : []) {
    const match = pattern.exec(entry);
    if (match && !pidAlive(Number(match[1]))) {
      rmSync(join(root, entry), { recursive: true, force: true });
      removed.push(join(root, entry));
    }
  }
  return removed;
}
