import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, exitAfterLogs } from '../../shared/src/logger.js';
import { parsePublicKey } from '../../shared/src/keys.js';
import { parseLogFormat, resolveLogFormat } from '../../shared/src/log-format.js';
import { loadControllerConfig, type ControllerConfig } from './config.js';
import { databaseSummary, describeDatabase, hasScheme, resolveDatabase } from './database-setting.js';
import { ensureAdminToken } from './first-token.js';
import { parseListenAddress } from './listen-address.js';
import { loadKeys } from './keys.js';
import { trustMode } from './manifests/statements.js';
import { startController } from './server.js';

/**
 * The flags of `serve` and `check-config`, described once: parseArgs reads them from here and the
 * usage synopsis is rendered from here, so the help cannot drift from what the parser accepts.
 */
const FLAGS = {
  config: { type: 'string', value: 'FILE' },
  'state-dir': { type: 'string', value: 'DIR' },
  'controller-key': { type: 'string', value: 'FILE' },
  'trusted-release-key': { type: 'string', value: 'NAME:BASE64', multiple: true },
  'single-key-release-key': { type: 'string', value: 'FILE' },
  listen: { type: 'string', value: 'HOST:PORT' },
  database: { type: 'string', value: 'FILE|URL' },
  'database-password-file': { type: 'string', value: 'FILE' },
  db: { type: 'string', value: 'FILE' },
  'manifest-ttl-seconds': { type: 'string', value: 'N' },
  'renew-check-seconds': { type: 'string', value: 'N' },
  'poll-interval-seconds': { type: 'string', value: 'N' },
  'public-url': { type: 'string', value: 'URL' },
  'metrics-token-file': { type: 'string', value: 'FILE' },
  'log-level': { type: 'string', value: 'LEVEL' },
  'log-format': { type: 'string', value: 'auto|json|pretty' },
  'max-concurrent-reboots': { type: 'string', value: 'N' },
} as const satisfies Record<string, { type: 'string'; value: string; multiple?: boolean }>;

const OPTIONS = Object.fromEntries(
  Object.entries(FLAGS).map(([name, flag]) => [name, { type: flag.type, ...('multiple' in flag ? { multiple: flag.multiple } : {}) }]),
) as { [K in keyof typeof FLAGS]: (typeof FLAGS)[K] extends { multiple: true } ? { type: 'string'; multiple: true } : { type: 'string' } };

/** `usage: shoal-controller serve [--config FILE] …`, wrapped at 80 columns. */
function synopsis(): string {
  const head = 'usage: shoal-controller serve';
  // Continuation lines start under "shoal-controller" (each item brings its own leading space).
  const indent = ' '.repeat('usage:'.length);
  const lines = [head];
  for (const [name, flag] of Object.entries(FLAGS)) {
    const item = `[--${name} ${flag.value}]${'multiple' in flag ? '...' : ''}`;
    if (lines.at(-1)!.length + 1 + item.length > 80) lines.push(indent);
    lines[lines.length - 1] += ` ${item}`;
  }
  lines.push(`${indent} shoal-controller check-config --config FILE [same flags]`);
  return lines.join('\n');
}

const USAGE = `${synopsis()}

Two keys, two roles. The controller key (--controller-key, mode 0600) signs
assignments: which host runs which system, now. Release statements (which
systems a host may run at all) are signed by CI with a release key the
controller never holds; --trusted-release-key lists CI's public keys, and
published releases must verify under one of them. Single-key mode
(--single-key-release-key) lets the controller sign release statements too:
simpler, and weaker, because whoever takes over the controller can then
install anything.

The config file is JSON:
  {"listen": "127.0.0.1:8420", "stateDir": "/var/lib/shoal-controller",
   "database": null, "databasePasswordFile": null,
   "controllerKeyFile": "/run/secrets/controller.key",
   "trustedReleaseKeys": ["ci-release-1:BASE64"],
   "singleKeyReleaseKeyFile": null,
   "manifestTtlSeconds": 86400, "renewCheckSeconds": 60,
   "pollIntervalSeconds": 30, "publicUrl": null, "metricsTokenFile": null,
   "logLevel": "info",
   "caches": [{"url": "https://cache.example.org",
               "publicKeys": ["cache-1:BASE64"]}],
   "cacheConcurrency": 32, "cacheTimeoutSeconds": 10,
   "admission": {"pendingChallenges": 10000,
     "pendingChallengesPerAddress": 256,
     "unauthenticatedConnections": 10000,
     "unauthenticatedConnectionsPerAddress": 256},
   "webhooks": {"allowPrivateNetworks": false, "allowedNetworks": []},
   "retention": {"reportsDays": 30, "eventsDays": 30, "auditEventsDays": 400,
     "webhookDeliveriesDays": 30, "manifestsDays": 90,
     "pruneIntervalSeconds": 300}}
caches are the binary caches the controller reads for closure diffs and the
rollout preflight, with the Nix keys the hosts trust. Flags override the file
(--trusted-release-key replaces the whole list); paths in the file must be
absolute. Set publicUrl to bind host logins to it (otherwise to the origin
each request reached).

database (--database) is a SQLite file (null: controller.sqlite in stateDir;
"db"/--db is its older name) or a postgres://USER@HOST/DATABASE URL, which
several controller replicas may share. Keep the password out of the URL: put
it in databasePasswordFile (--database-password-file), read at start, its
trailing newline dropped; a URL on the command line is visible in ps.

example: shoal-controller serve --config /etc/shoal/controller.json \\
           --log-level debug`;


function positiveInt(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

/** Flags and file merged and validated; flag paths are taken relative to the working directory. */
async function readConfig(args: string[]): Promise<{ config: ControllerConfig; source: string }> {
  if (args.some((a) => a === '--release-key' || a.startsWith('--release-key='))) {
    throw new Error(
      '--release-key no longer exists: pass the key that signs assignments as --controller-key FILE, and either CI\'s public release key(s) as --trusted-release-key NAME:BASE64 or, for the weaker single-key mode, --single-key-release-key FILE',
    );
  }
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  const file = values.config ? resolve(values.config) : undefined;
  if (!file) {
    if (!values['state-dir']) throw new Error('--state-dir is required (or --config FILE)');
    if (!values['controller-key']) throw new Error('--controller-key is required (or --config FILE)');
  }
  const path = (text: string | undefined) => (text === undefined ? undefined : resolve(text));
  if (values.database !== undefined && values.db !== undefined) throw new Error('--db is the older name of --database: give only --database');
  // --db and --database name one setting: either flag replaces both fields of the file.
  const database = values.database ?? values.db;
  const databaseOverrides =
    database === undefined
      ? {}
      : { database: hasScheme(database) ? database : resolve(database), db: null };
  const overrides = {
    stateDir: path(values['state-dir']),
    controllerKeyFile: path(values['controller-key']),
    singleKeyReleaseKeyFile: path(values['single-key-release-key']),
    trustedReleaseKeys: values['trusted-release-key'],
    listen: values.listen,
    ...databaseOverrides,
    databasePasswordFile: path(values['database-password-file']),
    manifestTtlSeconds: positiveInt('manifest-ttl-seconds', values['manifest-ttl-seconds']),
    renewCheckSeconds: positiveInt('renew-check-seconds', values['renew-check-seconds']),
    pollIntervalSeconds: positiveInt('poll-interval-seconds', values['poll-interval-seconds']),
    publicUrl: values['public-url'],
    metricsTokenFile: path(values['metrics-token-file']),
    logLevel: values['log-level'],
    ...(values['max-concurrent-reboots'] === undefined ? {} : { reboots: { maxConcurrent: positiveInt('max-concurrent-reboots', values['max-concurrent-reboots']) } }),
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
  // Key files are not read: at build time they exist only on the target host.
  const mode =
    config.singleKeyReleaseKeyFile === null
      ? `two-key mode, ${config.trustedReleaseKeys.length} trusted release key(s)`
      : 'single-key mode: a compromised controller can install anything';
  process.stdout.write(`config ${source}: ok (listen ${config.listen}, state ${config.stateDir}, database ${databaseSummary(config)}, ${mode})\n`);
}

async function serve(args: string[]): Promise<void> {
  const { config } = await readConfig(args);
  // Read first (the password file): a database the controller cannot use stops it before anything starts.
  const database = resolveDatabase(config);
  const stateDir = config.stateDir;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const { host, port } = parseListenAddress(config.listen);
  const manifestTtlMs = config.manifestTtlSeconds * 1000;
  const keys = loadKeys(config);
  const { values } = parseArgs({ args, options: OPTIONS, strict: true });
  const logger = createLogger('controller', { level: config.logLevel, format: resolveLogFormat(parseLogFormat(values['log-format']), process.stderr.isTTY === true) });
  // Background work goes through runBackground (background.ts); these catch what slipped past it.
  // A rejection nobody handled is logged and serving goes on; a thrown exception may have left
  // state half-changed, so it is logged and the process exits (its supervisor restarts it).
  process.on('unhandledRejection', (reason) => logger.error({ err: reason, task: 'unknown' }, 'background work failed (unhandled rejection)'));
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception; exiting');
    exitAfterLogs(logger, 1);
  });
  if (keys.releaseTrust.singleKey) {
    logger.warn(
      { singleKeyReleaseKey: keys.releaseTrust.singleKey.keyId, file: config.singleKeyReleaseKeyFile },
      'single-key mode: a compromised controller can install anything',
    );
  }
  const metricsToken = config.metricsTokenFile === null ? null : readMetricsToken(config.metricsTokenFile);

  const controller = await startController({
    dbFile: database.kind === 'sqlite' ? database.file : database.url,
    signer: keys.signer,
    releaseTrust: keys.releaseTrust,
    publicUrl: config.publicUrl,
    host,
    port,
    logger,
    manifestTtlMs,
    renewCheckMs: config.renewCheckSeconds * 1000,
    pollIntervalMs: config.pollIntervalSeconds * 1000,
    rebootLock: { maxConcurrent: config.reboots.maxConcurrent, leaseMs: config.reboots.leaseSeconds * 1000 },
    // Behind an https reverse proxy (publicUrl https://…) dashboard cookies are always Secure; otherwise per request.
    dashboard: { secureCookies: config.publicUrl?.startsWith('https://') ? true : 'auto' },
    metricsToken,
    processMetrics: true,
    cache: {
      caches: config.caches.map((c) => ({ url: c.url, publicKeys: c.publicKeys.map(parsePublicKey) })),
      concurrency: config.cacheConcurrency,
      timeoutMs: config.cacheTimeoutSeconds * 1000,
    },
    pendingChallenges: { total: config.admission.pendingChallenges, perAddress: config.admission.pendingChallengesPerAddress },
    hub: { unauthenticated: { total: config.admission.unauthenticatedConnections, perAddress: config.admission.unauthenticatedConnectionsPerAddress } },
    webhookDestinations: config.webhooks,
    retention: {
      reportsDays: config.retention.reportsDays,
      eventsDays: config.retention.eventsDays,
      auditEventsDays: config.retention.auditEventsDays,
      webhookDeliveriesDays: config.retention.webhookDeliveriesDays,
      manifestsDays: config.retention.manifestsDays,
      pruneIntervalMs: config.retention.pruneIntervalSeconds * 1000,
    },
  });
  const tokenFile = await ensureAdminToken(controller.deps.store, controller.deps.clock, stateDir);
  if (tokenFile) logger.info({ file: tokenFile }, 'created the first operator token');
  logger.info(
    {
      host,
      port: controller.port,
      url: controller.url,
      publicUrl: config.publicUrl,
      database: describeDatabase(database),
      controllerKey: keys.signer.keyId,
      trustMode: trustMode(keys.releaseTrust),
      trustedReleaseKeys: keys.releaseTrust.keys.map((k) => k.keyId),
      binaryCaches: config.caches.map((c) => c.url),
      manifestTtlMs,
    },
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
        exitAfterLogs(logger, 0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'controller did not stop cleanly');
        exitAfterLogs(logger, 1);
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
