import { readFileSync } from 'node:fs';

/** Everything a command may touch of the outside world, passed in so the CLI runs in-process in tests. */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  fetch: typeof fetch;
}

/** An expected failure: printed as one line `shoal: <message>`, exit status 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export const GLOBAL_OPTIONS = {
  controller: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export interface GlobalValues {
  controller?: string | undefined;
  token?: string | undefined;
  'token-file'?: string | undefined;
  json?: boolean | undefined;
}

export const DEFAULT_CONTROLLER = 'http://127.0.0.1:8420';

export function controllerUrl(values: GlobalValues, io: CliIo): string {
  const url = values.controller ?? io.env.SHOAL_CONTROLLER ?? DEFAULT_CONTROLLER;
  try {
    return new URL(url).toString().replace(/\/$/, '');
  } catch {
    throw new CliError(`controller URL ${JSON.stringify(url)} is not a URL`);
  }
}

function readTokenFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new CliError(`cannot read token file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** Flags before environment; a literal token before a token file. */
export function operatorToken(values: GlobalValues, io: CliIo): string {
  if (values.token) return values.token;
  if (values['token-file']) return readTokenFile(values['token-file']);
  if (io.env.SHOAL_TOKEN) return io.env.SHOAL_TOKEN;
  if (io.env.SHOAL_TOKEN_FILE) return readTokenFile(io.env.SHOAL_TOKEN_FILE);
  throw new CliError('no operator token: pass --token or --token-file, or set SHOAL_TOKEN or SHOAL_TOKEN_FILE');
}
