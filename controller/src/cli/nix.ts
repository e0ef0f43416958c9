import { spawn } from 'node:child_process';

/**
 * The `nix` commands of the release pipeline. Flakes and the new CLI are experimental on the Nix
 * versions CI machines still run (2.8 here), so every call turns them on; newer Nix accepts the
 * flag as well.
 */
export const NIX_FEATURES = ['--extra-experimental-features', 'nix-command flakes'] as const;

const TAIL_LINES = 25;

/** A `nix` command that exited non-zero: which one, and the last lines it printed. */
export class NixError extends Error {
  override readonly name = 'NixError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
  ) {
    super(`${command} exited with ${exitCode ?? 'a signal'}${stderrTail ? `:\n${stderrTail}` : ''}`);
  }
}

export function showCommand(argv: readonly string[]): string {
  return argv.map((arg) => (/^[A-Za-z0-9_\-+=.,/:@%#^]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export interface NixRunOptions {
  env: Record<string, string | undefined>;
  /** Each stderr line as it arrives (progress, traces); the tail is kept for errors either way. */
  onStderrLine?: (line: string) => void;
}

/** Nix colours its errors even into a pipe on some versions; the operator reads them in a log. */
function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
}

/** Runs `nix ARGS` (never a shell) and returns its stdout; throws NixError when it fails. */
export function runNix(args: readonly string[], options: NixRunOptions): Promise<string> {
  const argv = ['nix', ...NIX_FEATURES, ...args];
  const command = showCommand(argv);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: options.env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const tail: string[] = [];
    let partial = '';
    const line = (text: string) => {
      const clean = plain(text);
      tail.push(clean);
      if (tail.length > TAIL_LINES) tail.shift();
      options.onStderrLine?.(clean);
    };
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      lines.forEach(line);
    });
    child.on('error', (error) => reject(new NixError(command, null, `cannot start nix: ${error.message} (is Nix installed and on PATH?)`)));
    child.on('close', (code) => {
      if (partial) line(partial);
      if (code === 0) resolve(Buffer.concat(stdout).toString('utf8'));
      else reject(new NixError(command, code, tail.join('\n').trim()));
    });
  });
}

/** The lines of a Nix error worth showing: from the first "error:" on, without Nix's own noise. */
export function nixErrorText(error: NixError): string {
  const lines = error.stderrTail.split('\n').filter((l) => !/^warning: Git tree .* is dirty$/.test(l) && !/^trace: shoal-/.test(l));
  const first = lines.findIndex((l) => l.startsWith('error:'));
  return (first >= 0 ? lines.slice(first) : lines).join('\n').trim();
}
