import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Resource } from './cleanup.js';
import { describeCommand } from './run.js';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A long-running lab process (controller, agent). Its stdout and stderr go to `logFile` and
 * are kept in memory as lines for assertions. It is started under `setpriv --pdeathsig KILL`,
 * so it dies with the test process even when that is killed without a chance to clean up.
 */
export class LabProcess implements Resource {
  readonly lines: string[] = [];
  readonly exited: Promise<ExitStatus>;
  private readonly child: ChildProcess;
  private readonly log: WriteStream;
  private exitStatus: ExitStatus | null = null;
  /** The lab itself stopped or killed it (a supervisor must not restart it then, as systemd does not after `systemctl stop`). */
  stoppedByLab = false;
  private readonly lineWaiters = new Set<() => void>();

  constructor(
    readonly label: string,
    program: string,
    args: readonly string[],
    options: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string },
  ) {
    this.log = createWriteStream(options.logFile, { flags: 'a' });
    this.log.write(`# ${new Date().toISOString()} ${describeCommand(program, args)}\n`);
    this.child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', program, ...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let partial = '';
      stream.setEncoding('utf8').on('data', (chunk: string) => {
        this.log.write(chunk);
        const parts = (partial + chunk).split('\n');
        partial = parts.pop()!;
        if (parts.length > 0) {
          this.lines.push(...parts);
          for (const wake of this.lineWaiters) wake();
        }
      });
    }
    this.exited = new Promise((resolve) => {
      this.child.on('error', (error) => {
        this.lines.push(`lab: cannot start ${program}: ${error.message}`);
        this.exitStatus = { code: null, signal: null };
        resolve(this.exitStatus);
      });
      this.child.on('close', (code, signal) => {
        this.exitStatus = { code, signal };
        this.log.end(`# exited code=${code} signal=${signal}\n`);
        for (const wake of this.lineWaiters) wake();
        resolve(this.exitStatus);
      });
    });
  }

  /** Process id in the machine's pid namespace (for a namespaced host: the `unshare` process). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitStatus === null;
  }

  get status(): ExitStatus | null {
    return this.exitStatus;
  }

  output(lastLines = 40): string {
    return this.lines.slice(-lastLines).join('\n');
  }

  /** Resolves with the first line (already printed or future) that `match` accepts. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let checked = 0;
      const check = (): boolean => {
        for (; checked < this.lines.length; checked++) {
          const line = this.lines[checked]!;
          if (match(line)) {
            done();
            resolve(line);
            return true;
          }
        }
        if (!this.running) {
          done();
          reject(new Error(`${this.label} exited (${JSON.stringify(this.exitStatus)}) before ${what}:\n${this.output()}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: no ${what} within ${timeoutMs} ms:\n${this.output()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.lineWaiters.delete(wake);
      };
      const wake = () => void check();
      this.lineWaiters.add(wake);
      check();
    });
  }

  signal(signal: NodeJS.Signals): void {
    this.stoppedByLab = true;
    if (this.running) this.child.kill(signal);
  }

  /** SIGKILL and wait until it is gone. */
  async kill(): Promise<ExitStatus> {
    this.signal('SIGKILL');
    return this.exited;
  }

  async release(): Promise<void> {
    await this.kill();
  }

  releaseSync(): void {
    this.stoppedByLab = true;
    if (this.running && this.child.pid) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}
