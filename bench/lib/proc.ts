import { readFileSync } from 'node:fs';

/** Linux USER_HZ; the kernel reports utime/stime in these ticks. 100 on every mainstream build. */
const CLOCK_TICKS = 100;

export interface ProcStats {
  rssMb: number;
  /** User + system CPU time since the process started. */
  cpuSeconds: number;
  /** The same for its main thread alone (the event loop; not the signing thread, GC helpers or libuv's pool). */
  mainThreadCpuSeconds: number;
}

function cpuOf(statFile: string): number {
  const stat = readFileSync(statFile, 'utf8');
  // Fields after the command name, which is in parentheses and may itself contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** RSS (VmRSS in /proc/PID/status) and CPU time (utime + stime in /proc/PID/stat) of one process. */
export function procStats(pid: number): ProcStats {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return { rssMb: rssKb / 1024, cpuSeconds: cpuOf(`/proc/${pid}/stat`), mainThreadCpuSeconds: cpuOf(`/proc/${pid}/task/${pid}/stat`) };
}

/** CPU percentage of one core a process used between two samples. */
export function cpuPercent(before: ProcStats, after: ProcStats, elapsedMs: number): number {
  return ((after.cpuSeconds - before.cpuSeconds) / (elapsedMs / 1000)) * 100;
}

/** Samples RSS every intervalMs; peak() is the highest seen so far. */
export function sampleRss(pid: number, intervalMs = 200): { peak(): number; stop(): void } {
  let peak = 0;
  const take = () => {
    try {
      peak = Math.max(peak, procStats(pid).rssMb);
    } catch {
      // The process ended; the peak so far stands.
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    peak: () => {
      take();
      return peak;
    },
    stop: () => clearInterval(timer),
  };
}
