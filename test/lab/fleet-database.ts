import Database from 'better-sqlite3';
import pg from 'pg';
import { engineOf } from './replicas.js';

/**
 * Manifests issued for a rollout, per host, read straight from the controllers' database (not
 * through a controller, which might hide a duplicate): the proof that a replica dying mid-wave
 * made no host get a second manifest. `database`: a postgres:// URL with its password, or a
 * SQLite file.
 */
export async function rolloutManifestCounts(database: string, rolloutId: string): Promise<Record<string, number>> {
  const query = 'select host, count(*) as n from manifests where rollout_id = $1 group by host order by host';
  let rows: Array<{ host: string; n: number | string }>;
  if (engineOf(database) === 'postgres') {
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    try {
      rows = (await client.query<{ host: string; n: string }>(query, [rolloutId])).rows;
    } finally {
      await client.end();
    }
  } else {
    const db = new Database(database, { readonly: true, fileMustExist: true });
    try {
      rows = db.prepare(query.replace('$1', '?')).all(rolloutId) as Array<{ host: string; n: number }>;
    } finally {
      db.close();
    }
  }
  return Object.fromEntries(rows.map((r) => [r.host, Number(r.n)]));
}
