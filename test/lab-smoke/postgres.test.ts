import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../lab/lab.js';
import { pidAlive } from '../lab/pids.js';
import { findPostgres, startPostgres, sweepStalePostgresDirs, type PostgresServer } from '../lab/postgres.js';
import { waitFor } from '../lab/wait.js';

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe('test PostgreSQL server', () => {
  let server: PostgresServer | null = null;
  afterEach(async () => {
    await server?.stop();
    server = null;
  });

  it('serves a database to the shoal role over its private socket, and stop() leaves nothing behind', async () => {
    server = await startPostgres();
    expect(server.install.version).toBe(findPostgres().version);
    await query(server.url, 'CREATE TABLE hosts (name text PRIMARY KEY, seen bigint NOT NULL)');
    await query(server.url, 'INSERT INTO hosts VALUES ($1, $2)', ['web-1', Date.now()]);
    const [row] = await query<{ user: string; db: string; hosts: string }>(server.url, 'SELECT current_user AS user, current_database() AS db, count(*) AS hosts FROM hosts');
    expect(row).toEqual({ user: 'shoal', db: 'shoal', hosts: '1' });
    const [admin] = await query<{ superuser: boolean }>(server.adminUrl, "SELECT rolsuper AS superuser FROM pg_roles WHERE rolname = current_user");
    expect(admin!.superuser).toBe(true);
    const processes = server.processes();
    expect(processes.length).toBeGreaterThan(1);
    const { dir } = server;

    await server.stop();

    expect(processes.filter(pidAlive)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    await expect(query(server.url, 'SELECT 1')).rejects.toThrow();
  });

  it('refuses a connection with the wrong password', async () => {
    server = await startPostgres();
    const wrong = new URL(server.url);
    wrong.password = 'not-the-password';
    await expect(query(wrong.toString(), 'SELECT 1')).rejects.toThrow(/password authentication failed for user "shoal"/);
  });

  it('gives each caller its own database', async () => {
    server = await startPostgres();
    const other = await server.createDatabase('shoal_case_2');
    await query(server.url, 'CREATE TABLE only_here (x int)');
    const [row] = await query<{ db: string; tables: string }>(other, "SELECT current_database() AS db, count(*) AS tables FROM pg_tables WHERE tablename = 'only_here'");
    expect(row).toEqual({ db: 'shoal_case_2', tables: '0' });
    await expect(server.createDatabase('Robert"); DROP')).rejects.toThrow(/invalid database name/);
  });

  it('keeps its data across a stop and start of the server (an outage)', async () => {
    server = await startPostgres();
    await query(server.url, 'CREATE TABLE kept (x int)');
    await query(server.url, 'INSERT INTO kept VALUES (42)');
    await server.stopServer();
    await expect(query(server.url, 'SELECT 1')).rejects.toThrow();
    await server.startServer();
    expect(await query(server.url, 'SELECT x FROM kept')).toEqual([{ x: 42 }]);
  });

  it('dies with the test process that started it, and a later run removes its directory', async () => {
    // pdeathsig: should this test die, the child must not outlive it.
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, '--import', 'tsx', fileURLToPath(new URL('./postgres-crash-child.ts', import.meta.url))], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const made = await new Promise<{ dir: string; processes: number[] }>((resolve, reject) => {
      child.stdout.setEncoding('utf8').once('data', (line: string) => resolve(JSON.parse(line)));
      child.once('exit', (code) => reject(new Error(`postgres-crash-child exited ${code} before reporting`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));

    await waitFor('the server and its backends to die with the test process', () => made.processes.every((pid) => !pidAlive(pid)), { timeoutMs: 30_000 });
    expect(existsSync(made.dir)).toBe(true);
    sweepStalePostgresDirs();
    expect(existsSync(made.dir)).toBe(false);
  });
});
