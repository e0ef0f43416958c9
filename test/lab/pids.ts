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
