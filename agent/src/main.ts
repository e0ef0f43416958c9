import { createLogger, exitAfterLogs } from '../../shared/src/logger.js';
import { parseLogFormat, resolveLogFormat, type LogFormat } from '../../shared/src/log-format.js';
import { parseAgentArgs, USAGE } from './args.js';
import { DEFAULT_STATE_DIR, loadConfig } from './config.js';
import { AgentFatalError, startAgent, type RunningAgent } from './daemon.js';
import { rebootstrap } from './rebootstrap.js';
import { RESTART_EXIT_CODE } from './self-update.js';

/** `shoal-agent run|check-config|rebootstrap`: process concerns only (arguments, signals, exit codes). */

function fail(message: string): never {
  process.stderr.write(`shoal-agent: ${message}\n`);
  process.exit(1);
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parseAgentArgs(argv);
  if (!args.ok) fail(`${args.message}\n${USAGE}`);
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (args.command === undefined) fail(`no command given\n${USAGE}`);
  if (args.command === 'check-config') {
    if (!args.configFile) fail('check-config needs --config FILE');
    const result = await loadConfig(args.configFile, args.overrides);
    if (!result.ok) fail(result.message);
    const { host, trustedReleaseKeys, trustedControllerKeys } = result.config;
    process.stdout.write(
      `config ${args.configFile}: ok (host ${host}, ${trustedReleaseKeys.length} release key(s), ${trustedControllerKeys.length} controller key(s))\n`,
    );
    return;
  }
  if (args.command === 'rebootstrap') {
    // Only the state directory matters here; a config file, when given, must still be valid.
    let stateDir = typeof args.overrides.stateDir === 'string' ? args.overrides.stateDir : DEFAULT_STATE_DIR;
    if (args.configFile) {
      const result = await loadConfig(args.configFile, args.overrides);
      if (!result.ok) fail(result.message);
      stateDir = result.config.stateDir;
    }
    const outcome = await rebootstrap({ stateDir, minVersion: args.minVersion ?? 0, minFloor: args.minFloor ?? 0 });
    if (!outcome.ok) fail(outcome.message);
    const logger = createLogger('agent');
    logger.warn({ stateDir, minVersion: args.minVersion ?? 0, minFloor: args.minFloor ?? 0 }, outcome.summary);
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    process.stdout.write(`${outcome.summary}\n`);
    return;
  }
  if (args.command !== 'run') fail(`unknown command ${JSON.stringify(args.command)}\n${USAGE}`);

  const loaded = await loadConfig(args.configFile, args.overrides);
  if (!loaded.ok) fail(loaded.message);
  const config = loaded.config;
  let format: LogFormat;
  try {
    format = parseLogFormat(args.logFormat);
  } catch (error) {
    fail((error as Error).message);
  }
  const logger = createLogger('agent', { level: config.logLevel, format: resolveLogFormat(format, process.stderr.isTTY === true) }).child({ host: config.host });

  let agent: RunningAgent | null = null;
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    // Before start-up finished there is nothing to flush that is not already durable on disk.
    if (!agent) process.exit(0);
    // The log destination is asynchronous: exit only once the last lines are written.
    void agent.stop(2_000).finally(() => exitAfterLogs(logger, 0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // A switch brought a new configuration or package: stop cleanly (outbox flushed, state is
  // always on disk) and exit with RESTART_EXIT_CODE, so that systemd's Restart= starts the new one.
  let restartWanted = false;
  const restart = (): void => {
    restartWanted = true;
    if (stopping || !agent) return;
    stopping = true;
    logger.info({ exitCode: RESTART_EXIT_CODE }, 'exiting to be restarted');
    void agent.stop(10_000).finally(() => exitAfterLogs(logger, RESTART_EXIT_CODE));
  };

  try {
    agent = await startAgent(config, {
      logger,
      env: process.env,
      configFile: args.configFile,
      entryPoint: process.argv[1],
      onSelfChanged: restart,
    });
  } catch (error) {
    if (error instanceof AgentFatalError) {
      logger.fatal({ err: error.message }, 'cannot start');
      logger.flush();
      fail(error.message);
    }
    throw error;
  }
  if (stopping) await agent.stop(2_000).finally(() => process.exit(0));
  else if (restartWanted) restart();
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`shoal-agent: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
