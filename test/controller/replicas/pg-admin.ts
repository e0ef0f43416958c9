import pg from 'pg';

/** Ends the sessions of `role` (pool, listen, lease) of replica `replicaId`, as a crash or a DBA would; returns how many. */
export async function terminateSessions(adminUrl: string, replicaId: string, role: string): Promise<number> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const result = await client.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [`shoal:${replicaId}:${role}`]);
    return result.rowCount ?? 0;
  } finally {
    await client.end();
  }
}
