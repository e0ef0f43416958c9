import { spawn } from 'node:child_process';
import type { CommandFailure } from '../../shared/src/protocol.js';

export interface RunOptions {
  timeoutMs: number;
  /** After SIGTERM, how long the process group gets before SIGKILL. */
  killGraceMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep the whole stdout (bounded) for commands whose output is parsed, e.g. `nix path-info --json`. */
  captureStdout?: boolean;
  /** Keep the whole stderr (bounded) too, for commands that report on stderr, e.g. Nix's dry-run plan. */
  captureStderr?: boolean;
  /** Fed to stdin, then closed; otherwise stdin is /dev/null. */
  input?: string;
  /** Told the pid (which is also the process group id) as soon as the command started. */
  onSpawn?: (pid: number) => void;
}

export type RunResult =
  | { ok: true; command: string; outputTail: string; stdout: string; stderr: string; durationMs: number }
  | { ok: false; failure: CommandFailure; stdout: string; stderr: string; durationMs: number };

const TAIL_LINES = 40;
const TAIL_BYTES = 8 * 1024;
const MAX_CAPTURED_BYTES = 64 * 1024 * 1024;
// Once the main process exited, descendants that keep the pipes open get this long before we stop reading.
const DRAIN_AFTER_EXIT_MS = 1_000;

/** How a command is shown to an operator: argv, quoted only where needed. */
export function displayCommand(argv: readonly string[]): string {
  const shown = argv.map((arg) => (/^[A-Za-z0-9_\-+=.,/:@%]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
  return shown.length > 4096 ? `${shown.slice(0, 4093)}...` : shown;
}

/** Keeps the last bytes of interleaved stdout+stderr; the operator needs the end, where the error is. */
class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= TAIL_BYTES * 2) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  text(): string {
    let bytes = Buffer.concat(this.chunks);
    if (bytes.length > TAIL_BYTES) bytes = bytes.subarray(bytes.length - TAIL_BYTES);
    const lines = bytes.toString('utf8').replace(/^\uFFFD+/, '').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-TAIL_LINES).join('\n');
  }
}

/** One stream kept whole (up to a bound) when the caller parses it; nothing otherwise. */
class Captured {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly enabled: boolean) {}

  push(chunk: Buffer): void {
    if (!this.enabled || this.size >= MAX_CAPTURED_BYTES) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * Runs argv (never a shell string) in its own process group, so a timeout can take down
 * everything the command started: SIGTERM to the group, SIGKILL after a grace period.
 * Never throws for a failing command; the failure is shaped like shared's CommandFailure.
 */
export function runCommand(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  if (argv.length === 0) throw new Error('runCommand needs at least a program');
  const command = displayCommand(argv);
  const started = Date.now();
  const tail = new OutputTail();
  const stdout = new Captured(options.captureStdout === true);
  const stderr = new Captured(options.captureStderr === true);

  return new Promise((resolve) => {
    let timedOut = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.stdin?.on('error', () => {});

    const finish = (spawnError?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      child.stdout?.destroy();
      child.stderr?.destroy();
      const durationMs = Date.now() - started;
      let outputTail = tail.text();
      if (spawnError) outputTail = `${outputTail}${outputTail ? '\n' : ''}cannot run ${argv[0]}: ${spawnError.message}`;
      const code = exit?.code ?? null;
      const signal = exit?.signal ?? null;
      if (!spawnError && !timedOut && code === 0) {
        resolve({ ok: true, command, outputTail, stdout: stdout.text(), stderr: stderr.text(), durationMs });
      } else {
        resolve({ ok: false, failure: { command, exitCode: code, signal, timedOut, outputTail }, stdout: stdout.text(), stderr: stderr.text(), durationMs });
      }
    };

    const timeoutTimer = setTimeout(() => {
      if (!child.pid) return;
      timedOut = true;
      killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), options.killGraceMs ?? 5_000);
    }, options.timeoutMs);

    child.stdout!.on('data', (chunk: Buffer) => {
      tail.push(chunk);
      stdout.push(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      tail.push(chunk);
      stderr.push(chunk);
    });
    child.on('error', (error) => finish(error));
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // A timed-out command's stragglers are killed with the group; a finished one's are not our business.
      if (timedOut && child.pid) killGroup(child.pid, 'SIGKILL');
      drainTimer = setTimeout(() => finish(), DRAIN_AFTER_EXIT_MS);
    });
    child.on('close', () => finish());
  });
}
