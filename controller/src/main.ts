import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../../shared/src/logger.js';
import { loadControllerConfig, type ControllerConfig } from './config.js';
import { ensureAdminToken } from './first-token.js';
import { parseListenAddress } from './listen-address.js';
import { loadManifestSigner } from './manifests/signer.js';
import { startController } from './server.js';

const USAGE = `usage: shoal-controller serve [--config FILE] [--state-dir DIR] [--release-key FILE]
       [--listen HOST:PORT] [--db FILE] [--manifest-ttl-seconds N] [--renew-check-seconds N]
       [--poll-interval-seconds N] [--public-url URL] [--metrics-token-file FILE] [--log-level LEVEL]
       shoal-controller check-config --config FILE [same flags]

The config file is JSON: {"listen": "127.0.0.1:8420", "stateDir": "/var/lib/shoal-controller",
"db": null, "releaseKeyFile": "/run/secrets/release.key", "manifestTtlSeconds": 86400,
"renewCheckSeconds": 60, "pollIntervalSeconds": 30, "publicUrl": null, "metricsTokenFile": null,
"logLevel": "info"}.
Flags override the file; paths in the file must be absolute.

example: shoal-controller serve --config /etc/shoal/controller.json --log-level debug`;

const OPTIONS = {
  config: { type: 'string' },
  'state-dir': { type: 'string' },
  'release-key': { type: 'string' },
  listen: { type: 'string' },
  db: { type: 'string' },
  'manifest-ttl-seconds': { type: 'string' },
  'renew-check-seconds': { type: 'string' },
  'poll-interval-seconds': { type: 'string' },
  'public-url': { type: 'string' },
  'metrics-token-file': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

function positiveInt(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

/** Flags and file merged and validated; flag paths are taken relative to the working directory. */
async function readConfig(args: string[]): Promise<{ config: ControllerConfig; source: string }> {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  const file = values.config ? resolve(values.config) : undefined;
  if (!file) {
    if (!values['state-dir']) throw new Error('--state-dir is required (or --config FILE)');
    if (!values['release-key']) throw new Error('--release-key is required (or --config FILE)');
  }
  const path = (text: string | undefined) => (text === undefined ? undefined : resolve(text));
  const overrides = {
    stateDir: path(values['state-dir']),
    releaseKeyFile: path(values['release-key']),
    listen: values.listen,
    db: path(values.db),
    manifestTtlSeconds: positiveInt('manifest-ttl-seconds', values['manifest-ttl-seconds']),
    renewCheckSeconds: positiveInt('renew-check-seconds', values['renew-check-seconds']),
    pollIntervalSeconds: positiveInt('poll-interval-seconds', values['poll-interval-seconds']),
    publicUrl: values['public-url'],
    metricsTokenFile: path(values['metrics-token-file']),
    logLevel: values['log-level'],
  };
  const loaded = await loadControllerConfig(file, overrides);
  if (!loaded.ok) throw new Error(loaded.message);
  return { config: loaded.config, source: file ?? '(command line)' };
}

function readMetricsToken(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new Error(`metrics token file ${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (token === '' || /\s/.test(token)) throw new Error(`metrics token file ${file}: must hold one token with no whitespace`);
  return token;
}

async function checkConfig(args: string[]): Promise<void> {
  if (!args.some((a) => a === '--config' || a.startsWith('--config='))) throw new Error('check-config needs --config FILE');
  const { config, source } = await readConfig(args);
  // The release key is not read: at build time it exists only on the target host.
  process.stdout.write(`config ${source}: ok (listen ${config.listen}, state ${config.stateDir})\n`);
}

async function serve(args: string[]): Promise<void> {
  const { config } = await readConfig(args);
  const stateDir = config.stateDir;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const { host, port } = parseListenAddress(config.listen);
  const manifestTtlMs = config.manifestTtlSeconds * 1000;
  const signer = loadManifestSigner(config.releaseKeyFile);
  const logger = createLogger('controller', { level: config.logLevel });
  const dbFile = config.db ?? join(stateDir, 'controller.sqlite');
  const metricsToken = config.metricsTokenFile === null ? null : readMetricsToken(config.metricsTokenFile);

  const controller = await startController({
    dbFile,
    signer,
    host,
    port,
    logger,
    manifestTtlMs,
    renewCheckMs: config.renewCheckSeconds * 1000,
    pollIntervalMs: config.pollIntervalSeconds * 1000,
    // Behind an https reverse proxy (publicUrl https://…) dashboard cookies are always Secure; otherwise per request.
    dashboard: { secureCookies: config.publicUrl?.startsWith('https://') ? true : 'auto' },
    metricsToken,
    processMetrics: true,
  });
  const tokenFile = ensureAdminToken(controller.database.db, controller.deps.clock, stateDir);
  if (tokenFile) logger.info({ file: tokenFile }, 'created the first operator token');
  logger.info(
    { host, port: controller.port, url: controller.url, publicUrl: config.publicUrl, db: dbFile, releaseKey: signer.keyId, manifestTtlMs },
    'controller listening',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'controller stopping');
    controller.close().then(
      () => {
        logger.info('controller stopped');
        // The log destination is asynchronous: exit only once the last lines are written.
        logger.flush(() => process.exit(0));
      },
      (error: unknown) => {
        logger.error({ err: error }, 'controller did not stop cleanly');
        logger.flush(() => process.exit(1));
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (rest.includes('--help') || rest.includes('-h')) return void process.stdout.write(`${USAGE}\n`);
  if (command === 'serve') return serve(rest);
  if (command === 'check-config') return checkConfig(rest);
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    if (command === undefined) process.exitCode = 2;
    return;
  }
  throw new Error(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`shoal-controller: ${(error as Error).message}\n`);
  process.exit(1);
});
