// Helper process for postgres.test.ts: starts a PostgreSQL server, opens a connection (so a
// backend exists), prints the server's processes and directory as one JSON line, then waits to
// be killed without cleaning up.
import pg from 'pg';
import { startPostgres } from '../lab/postgres.js';

const server = await startPostgres();
const client = new pg.Client({ connectionString: server.url });
await client.connect();
await client.query('SELECT 1');
process.stdout.write(`${JSON.stringify({ dir: server.dir, processes: server.processes() })}\n`);
setInterval(() => undefined, 60_000);
