import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../../shared/src/logger.js';
import { ensureAdminToken } from './first-token.js';
import { parseListenAddress } from './listen-address.js';
import { loadManifestSigner } from './manifests/signer.js';
import { startController } from './server.js';

const USAGE = `usage: shoal-controller serve --state-dir DIR --release-key FILE --listen HOST:PORT
       [--db FILE] [--manifest-ttl-seconds N] [--renew-check-seconds N]
       [--poll-interval-seconds N] [--log-level LEVEL]`;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'state-dir': { type: 'string' },
      'release-key': { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:8420' },
      db: { type: 'string' },
      'manifest-ttl-seconds': { type: 'string' },
      'renew-check-seconds': { type: 'string' },
      'poll-interval-seconds': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
    },
    strict: true,
  });
  if (!values['state-dir']) throw new Error('--state-dir is required');
  if (!values['release-key']) throw new Error('--release-key is required');
  const stateDir = resolve(values['state-dir']);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const { host, port } = parseListenAddress(values.listen);
  const manifestTtlMs = positiveInt('manifest-ttl-seconds', values['manifest-ttl-seconds'], 24 * 3600) * 1000;
  const renewCheckMs = positiveInt('renew-check-seconds', values['renew-check-seconds'], 60) * 1000;
  const pollIntervalMs = positiveInt('poll-interval-seconds', values['poll-interval-seconds'], 30) * 1000;
  const signer = loadManifestSigner(values['release-key']);
  const logger = createLogger('controller', { level: values['log-level'] });
  const dbFile = values.db ? resolve(values.db) : join(stateDir, 'controller.sqlite');

  const controller = await startController({ dbFile, signer, host, port, logger, manifestTtlMs, renewCheckMs, pollIntervalMs });
  const tokenFile = ensureAdminToken(controller.database.db, controller.deps.clock, stateDir);
  if (tokenFile) logger.info({ file: tokenFile }, 'created the first operator token');
  logger.info({ host, port: controller.port, url: controller.url, db: dbFile, releaseKey: signer.keyId, manifestTtlMs }, 'controller listening');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'controller stopping');
    controller.close().then(
      () => {
        logger.info('controller stopped');
        logger.flush();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'controller did not stop cleanly');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'serve') return serve(rest);
  if (command === undefined || command === '--help' || command === 'help') {
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
