import { spawn, type SpawnOptions } from 'node:child_process';

/** How a command ended: exit code or signal, and what it printed. */
export interface RunResult {
  command: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when the lab killed it at its timeoutMs: the step that hung, not one that failed. */
  timedOutAfterMs: number | null;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  /** SIGKILL when aborted: a test ends a hanging command once it saw what it waited for. */
  signal?: AbortSignal;
}

/** Failure of a command the lab needed to succeed; the message names it and shows its last lines. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(readonly result: RunResult) {
    const how = result.timedOutAfterMs !== null
      ? `was still running after ${result.timedOutAfterMs} ms and was killed`
      : result.signal ? `was killed by ${result.signal}` : `exited with ${result.exitCode}`;
    super(`${result.command} ${how}:\n${tail(result.stderr || result.stdout, 20)}`);
  }
}

export function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function describeCommand(program: string, args: readonly string[]): string {
  return [program, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** Runs a program to completion; never throws for a non-zero exit (see runOk). */
export function run(program: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const command = describeCommand(program, args);
  return new Promise((resolve, reject) => {
    const spawnOptions: SpawnOptions = { cwd: options.cwd, env: options.env ?? process.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] };
    const child = spawn(program, args, spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOutAfterMs: number | null = null;
    const timer = options.timeoutMs
      ? setTimeout(() => {
          timedOutAfterMs = options.timeoutMs!;
          child.kill('SIGKILL');
        }, options.timeoutMs)
      : null;
    const abort = () => child.kill('SIGKILL');
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener('abort', abort, { once: true });
    child.on('error', (error) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot start ${command}: ${error.message}`, { cause: error }));
    });
    child.on('close', (exitCode, signal) => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', abort);
      resolve({ command, exitCode, signal, stdout, stderr, timedOutAfterMs });
    });
    if (options.input !== undefined) {
      // A program that exits without reading its input must not crash the lab with EPIPE.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(options.input);
    }
  });
}

/** Runs a program and throws CommandError unless it exits 0. Returns its stdout. */
export async function runOk(program: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(program, args, options);
  if (result.exitCode !== 0) throw new CommandError(result);
  return result.stdout;
}
