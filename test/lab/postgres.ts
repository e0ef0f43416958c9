import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ResourceScope, type Resource } from './cleanup.js';
import { LabProcess } from './lab-process.js';
import { childPids, pidAlive, sweepDirsOfDeadProcesses, uniqueSuffix } from './pids.js';
import { runOk } from './run.js';
import { waitFor } from './wait.js';

const DIR_PREFIX = 'shoal-pg-';
const POSTGRES_ROOT = '/usr/lib/postgresql';
/** The socket lives in the server's private directory, so a fixed port number collides with nothing. */
const SOCKET_PORT = 5432;
const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresInstall {
  /** Major version (the directory name under /usr/lib/postgresql). */
  version: number;
  bin: string;
}

/**
 * Debian's PostgreSQL binaries: the newest /usr/lib/postgresql/<major>/bin that has a server
 * (several majors can be installed side by side). SHOAL_POSTGRES_BIN names another bin directory.
 */
export function findPostgres(env: NodeJS.ProcessEnv = process.env): PostgresInstall {
  const override = env.SHOAL_POSTGRES_BIN;
  if (override) {
    if (!existsSync(join(override, 'postgres'))) throw new Error(`SHOAL_POSTGRES_BIN=${override} has no postgres binary`);
    return { version: Number(/\/(\d+)\/bin\/?$/.exec(override)?.[1] ?? 0), bin: override };
  }
  const majors = (existsSync(POSTGRES_ROOT) ? readdirSync(POSTGRES_ROOT) : [])
    .filter((entry) => /^\d+$/.test(entry) && existsSync(join(POSTGRES_ROOT, entry, 'bin', 'postgres')))
    .map(Number)
    .sort((a, b) => b - a);
  if (majors.length === 0) {
    throw new Error(`PostgreSQL is not installed: no ${POSTGRES_ROOT}/<version>/bin/postgres (.ci/setup installs Debian's postgresql package)`);
  }
  return { version: majors[0]!, bin: join(POSTGRES_ROOT, String(majors[0]), 'bin') };
}

interface ServerUser {
  uid: number;
  gid: number;
  /** Prefix that runs a command as this user with the parent-death signal set after the switch (setpriv clears it otherwise). */
  prefix: string[];
}

/** PostgreSQL refuses to run as root; as root the server runs as the package's `postgres` user. */
async function serverUser(): Promise<ServerUser> {
  if (process.getuid?.() !== 0) return { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1, prefix: [] };
  const uid = Number((await runOk('id', ['-u', 'postgres'])).trim());
  const gid = Number((await runOk('id', ['-g', 'postgres'])).trim());
  return { uid, gid, prefix: ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--pdeathsig', 'KILL', '--'] };
}

export interface PostgresServer {
  readonly install: PostgresInstall;
  /** The private directory: data/, the socket, the log. Removed by stop(). */
  readonly dir: string;
  readonly socketDir: string;
  /** The test database, owned by the unprivileged role `shoal` (what a controller connects as). */
  readonly url: string;
  /** Superuser connection to the `postgres` database, for tests that administer the server. */
  readonly adminUrl: string;
  /** Another empty database owned by `shoal` (one per test, as each SQLite test gets its own file); returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** The postmaster and every process it forked, right now. */
  processes(): number[];
  /** Shuts the server down (fast: clients are disconnected), keeping its data; for outage tests. */
  stopServer(): Promise<void>;
  /** Starts it again on the same socket and data. */
  startServer(): Promise<void>;
  /** Shuts down and removes everything. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Where the server is registered for cleanup; default a scope of its own (released by stop()). */
  scope?: ResourceScope;
  /** Name of the test database; default `shoal`. */
  database?: string;
}

function connectionUrl(user: string, password: string, socketDir: string, database: string): string {
  return `postgresql://${user}:${encodeURIComponent(password)}@localhost/${database}?host=${encodeURIComponent(socketDir)}`;
}

/**
 * Starts a private PostgreSQL server for tests: `initdb` into a fresh directory under the temp
 * directory, the server listening only on a Unix socket in that directory (no TCP port to race
 * other workers for), password authentication (scram) for every connection, a role `shoal`
 * owning the database `shoal`. The postmaster runs in the foreground under a parent-death signal,
 * so it dies with the test process even when that is killed; its backends exit when it does.
 * Durability is off (fsync, full-page writes): tests never survive a machine crash.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const database = options.database ?? 'shoal';
  if (!DATABASE_NAME.test(database)) throw new Error(`invalid database name ${JSON.stringify(database)} (lower-case letters, digits, _)`);
  sweepStalePostgresDirs();
  const install = findPostgres();
  const user = await serverUser();
  const scope = options.scope ?? new ResourceScope();
  const dir = join(tmpdir(), `${DIR_PREFIX}${uniqueSuffix()}`);
  const dataDir = join(dir, 'data');
  const superPassword = randomBytes(18).toString('base64url');
  const shoalPassword = randomBytes(18).toString('base64url');
  let postmaster: LabProcess | null = null;

  const directory: Resource = {
    label: `postgres directory ${dir}`,
    release: () => rm(dir, { recursive: true, force: true }),
    releaseSync: () => rmSync(dir, { recursive: true, force: true }),
  };
  scope.add(directory);

  const startServer = async (): Promise<void> => {
    if (postmaster?.running) throw new Error('the PostgreSQL server is already running');
    const argv = [
      ...user.prefix,
      join(install.bin, 'postgres'),
      '-D', dataDir,
      '-k', dir,
      '-p', String(SOCKET_PORT),
      '-c', 'listen_addresses=',
      '-c', 'fsync=off',
      '-c', 'full_page_writes=off',
      '-c', 'synchronous_commit=off',
    ];
    const server = new LabProcess(`postgres ${dir}`, argv[0]!, argv.slice(1), { cwd: dir, logFile: join(dir, 'postgres.log') });
    postmaster = server;
    scope.add(server);
    await server.waitForLine((line) => line.includes('database system is ready to accept connections'), 60_000, 'PostgreSQL ready');
  };

  const stopServer = async (): Promise<void> => {
    const server = postmaster;
    if (!server?.running) return;
    const forked = childPids(server.pid);
    // SIGINT is PostgreSQL's fast shutdown: roll back open transactions, disconnect clients, checkpoint.
    server.signal('SIGINT');
    const grace = setTimeout(() => server.signal('SIGKILL'), 30_000);
    await server.exited;
    clearTimeout(grace);
    await scope.release(server);
    // After a SIGKILL the backends notice the postmaster's death on their own; wait for that too.
    await waitFor('PostgreSQL backends to exit', () => forked.every((pid) => !pidAlive(pid)) || null, { timeoutMs: 30_000 });
  };

  const admin = async <T>(work: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: connectionUrl('postgres', superPassword, dir, 'postgres') });
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end();
    }
  };

  const createDatabase = async (name: string): Promise<string> => {
    if (!DATABASE_NAME.test(name)) throw new Error(`invalid database name ${JSON.stringify(name)} (lower-case letters, digits, _)`);
    await admin((client) => client.query(`CREATE DATABASE ${name} OWNER shoal`));
    return connectionUrl('shoal', shoalPassword, dir, name);
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await stopServer();
    await scope.release(directory);
    if (!options.scope) await scope.releaseAll();
  };

  try {
    await mkdir(dir, { mode: 0o700 });
    await chown(dir, user.uid, user.gid);
    const passwordFile = join(dir, 'superuser-password');
    await writeFile(passwordFile, `${superPassword}\n`, { mode: 0o600 });
    chownSync(passwordFile, user.uid, user.gid);
    const [program, ...args] = [
      ...user.prefix,
      join(install.bin, 'initdb'),
      '--pgdata', dataDir,
      '--username', 'postgres',
      '--pwfile', passwordFile,
      '--auth', 'scram-sha-256',
      '--encoding', 'UTF8',
      '--locale', 'C',
      '--no-sync',
    ];
    await runOk(program!, args, { cwd: dir });
    await rm(passwordFile);
    await startServer();
    await admin(async (client) => {
      await client.query(`CREATE ROLE shoal LOGIN PASSWORD ${client.escapeLiteral(shoalPassword)}`);
      await client.query(`CREATE DATABASE ${database} OWNER shoal`);
    });
  } catch (error) {
    stopped = true;
    await stopServer().catch(() => undefined);
    if (options.scope) await scope.release(directory);
    else await scope.releaseAll();
    throw error;
  }

  return {
    install,
    dir,
    socketDir: dir,
    url: connectionUrl('shoal', shoalPassword, dir, database),
    adminUrl: connectionUrl('postgres', superPassword, dir, 'postgres'),
    createDatabase,
    processes: () => (postmaster?.running ? [postmaster.pid, ...childPids(postmaster.pid)] : []),
    stopServer,
    startServer,
    stop,
  };
}

/** Removes server directories of test processes that died without cleaning up (their postmasters died with them). */
export function sweepStalePostgresDirs(root = tmpdir()): string[] {
  return sweepDirsOfDeadProcesses(DIR_PREFIX, root);
}
