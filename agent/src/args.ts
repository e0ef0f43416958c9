import { parseArgs } from 'node:util';
import type { ConfigOverrides } from './config.js';

/** Command-line flags of `shoal-agent`; every config field that an operator or the lab overrides has one. */
const OPTIONS = {
  config: { type: 'string' },
  host: { type: 'string' },
  'controller-url': { type: 'string' },
  'state-dir': { type: 'string' },
  'enrollment-token-file': { type: 'string' },
  'trusted-release-key': { type: 'string', multiple: true },
  'trusted-controller-key': { type: 'string', multiple: true },
  substituter: { type: 'string', multiple: true },
  'trusted-public-key': { type: 'string', multiple: true },
  'poll-interval-ms': { type: 'string' },
  websocket: { type: 'boolean' },
  'no-websocket': { type: 'boolean' },
  action: { type: 'string' },
  'health-deadline-ms': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  profile: { type: 'string' },
  'current-system': { type: 'string' },
  'booted-system': { type: 'string' },
  'min-version': { type: 'string' },
  'min-floor': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const USAGE = `usage: shoal-agent run [--config FILE] [flags]
       shoal-agent check-config --config FILE
       shoal-agent rebootstrap [--config FILE] [--min-version N] [--min-floor F]   (agent stopped; after its state was lost)
flags (each overrides the config file):
  --host NAME  --controller-url URL  --state-dir DIR  --enrollment-token-file FILE
  --trusted-release-key NAME:B64 (repeatable)  --trusted-controller-key NAME:B64 (repeatable)
  --substituter URL (repeatable)
  --trusted-public-key NAME:B64 (repeatable)  --poll-interval-ms N  --websocket | --no-websocket
  --action safe-switch|switch|boot|dry-activate  --health-deadline-ms N  --log-level LEVEL
  --log-format auto|json|pretty (auto: pretty on a terminal, JSON otherwise)
  --profile PATH  --current-system PATH  --booted-system PATH`;

export type ParsedArgs =
  | {
      ok: true;
      command: string | undefined;
      configFile: string | undefined;
      overrides: ConfigOverrides;
      /** rebootstrap only: the version and security floor to record as the highest accepted. */
      minVersion: number | undefined;
      minFloor: number | undefined;
      help: boolean;
      logFormat: string | undefined;
    }
  | { ok: false; message: string };

function integer(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  // Left as a string when not an integer, so the schema names the field in its error.
  return /^\d+$/.test(value) ? Number(value) : (value as unknown as number);
}

export function parseAgentArgs(argv: readonly string[]): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) return { ok: false, message: `unexpected argument ${JSON.stringify(positionals[1])}` };
  if (values.websocket && values['no-websocket']) return { ok: false, message: '--websocket and --no-websocket contradict each other' };
  const watermark: Record<'min-version' | 'min-floor', number | undefined> = { 'min-version': undefined, 'min-floor': undefined };
  for (const flag of ['min-version', 'min-floor'] as const) {
    const value = values[flag];
    if (value === undefined) continue;
    if (positionals[0] !== 'rebootstrap') return { ok: false, message: `--${flag} only applies to rebootstrap` };
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
      return { ok: false, message: `--${flag} must be a whole number (0 or more), got ${JSON.stringify(value)}` };
    }
    watermark[flag] = Number(value);
  }
  const overrides: ConfigOverrides = {
    host: values.host,
    controllerUrl: values['controller-url'],
    stateDir: values['state-dir'],
    enrollmentTokenFile: values['enrollment-token-file'],
    trustedReleaseKeys: values['trusted-release-key'],
    trustedControllerKeys: values['trusted-controller-key'],
    substituters: values.substituter,
    trustedPublicKeys: values['trusted-public-key'],
    pollIntervalMs: integer(values['poll-interval-ms']),
    websocket: values['no-websocket'] ? false : values.websocket,
    action: values.action,
    healthDeadlineMs: integer(values['health-deadline-ms']),
    logLevel: values['log-level'],
    'paths.profile': values.profile,
    'paths.currentSystem': values['current-system'],
    'paths.bootedSystem': values['booted-system'],
  };
  return {
    ok: true,
    command: positionals[0],
    configFile: values.config,
    overrides,
    minVersion: watermark['min-version'],
    minFloor: watermark['min-floor'],
    help: values.help ?? false,
    logFormat: values['log-format'],
  };
}
