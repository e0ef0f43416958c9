import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';

/** Everything a command may touch of the outside world, passed in so the CLI runs in-process in tests. */
export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  fetch: typeof fetch;
  /** Whether stdout is a terminal: colour and redrawing only then. */
  isTTY?: boolean;
}

/**
 * An expected failure: printed as one line `shoal: <message>`, then each detail (an offender, a
 * refused field) on its own indented line; exit status 1 unless said otherwise.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
    readonly details: readonly string[] = [],
  ) {
    super(message);
  }
}

export interface GlobalValues {
  controller?: string | undefined;
  token?: string | undefined;
  'token-file'?: string | undefined;
  config?: string | undefined;
  json?: boolean | undefined;
}

export const DEFAULT_CONTROLLER = 'http://127.0.0.1:8420';

/** ~/.config/shoal/cli.json (or --config / SHOAL_CONFIG): where to find the controller and the token. */
export const CliConfig = z.strictObject({
  controller: z.url({ protocol: /^https?$/, message: 'must be an http:// or https:// URL' }).optional(),
  tokenFile: z.string().min(1).optional(),
});
export type CliConfig = z.infer<typeof CliConfig>;

/** Reads the CLI config file; a missing default file is no config, a missing named one is an error. */
export function cliConfig(values: GlobalValues, io: CliIo): CliConfig & { file?: string } {
  const named = values.config ?? io.env.SHOAL_CONFIG;
  const home = io.env.XDG_CONFIG_HOME ?? (io.env.HOME ? join(io.env.HOME, '.config') : undefined);
  const file = named ? resolve(named) : home ? join(home, 'shoal', 'cli.json') : undefined;
  if (!file) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!named && code === 'ENOENT') return {};
    throw new CliError(`cannot read CLI config ${file}: ${code ?? (error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new CliError(`CLI config ${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = CliConfig.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const path = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${key}: unknown field (known: controller, tokenFile)`).join('; ');
      return `${path || '(top level)'}: ${issue.message.replace(/^Invalid input: /, '')}`;
    });
    throw new CliError(`CLI config ${file}: ${problems.join('; ')}`);
  }
  // A relative token file is relative to the config file, not to wherever shoal runs.
  const tokenFile = parsed.data.tokenFile === undefined ? undefined : resolve(dirname(file), parsed.data.tokenFile);
  return { ...parsed.data, ...(tokenFile ? { tokenFile } : {}), file };
}

/** Flags before environment before the config file. */
export function controllerUrl(values: GlobalValues, io: CliIo): string {
  const url = values.controller ?? io.env.SHOAL_CONTROLLER ?? cliConfig(values, io).controller ?? DEFAULT_CONTROLLER;
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

/** Flags before environment before the config file; a literal token before a token file. */
export function operatorToken(values: GlobalValues, io: CliIo): string {
  if (values.token) return values.token;
  if (values['token-file']) return readTokenFile(values['token-file']);
  if (io.env.SHOAL_TOKEN) return io.env.SHOAL_TOKEN;
  if (io.env.SHOAL_TOKEN_FILE) return readTokenFile(io.env.SHOAL_TOKEN_FILE);
  const fromConfig = cliConfig(values, io).tokenFile;
  if (fromConfig) return readTokenFile(fromConfig);
  throw new CliError('no operator token: pass --token or --token-file, set SHOAL_TOKEN or SHOAL_TOKEN_FILE, or put tokenFile in ~/.config/shoal/cli.json');
}
