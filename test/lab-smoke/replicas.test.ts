import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresTestDatabase, stopPostgresTestServer } from '../controller/postgres-database.js';
import { rolloutManifestCounts } from '../lab/fleet-database.js';
import { Lab } from '../lab/lab.js';
import { rotated, websocketConnects, websocketControllerFromLog } from '../lab/replicas.js';
import { labFixtures } from '../lab/vitest-fixtures.js';
import { startReplicaFleet, stopReplicaFleet, waitForWebsocket, websocketOf, type ReplicaFleet } from '../e2e/replicas-fleet.js';

const line = (entry: object) => JSON.stringify({ level: 30, ...entry });

describe('replica helpers read what controllers and agents log', () => {
  it('rotates the replica URLs so that host i dials replica i mod N first', () => {
    const urls = ['a', 'b', 'c'];
    expect([0, 1, 2, 3, 4].map((i) => rotated(urls, i))).toEqual([
      ['a', 'b', 'c'],
      ['b', 'c', 'a'],
      ['c', 'a', 'b'],
      ['a', 'b', 'c'],
      ['b', 'c', 'a'],
    ]);
  });

  it('takes the websocket from the newest connection line', () => {
    const agent = [line({ msg: 'websocket connected', controller: 'http://a' }), line({ msg: 'websocket closed' }), line({ msg: 'websocket connected', controller: 'http://b' })];
    expect(websocketControllerFromLog(agent)).toBe('http://b');
    expect(websocketConnects(agent)).toBe(2);
    expect(websocketControllerFromLog([])).toBeNull();
  });
});

/**
 * The replica harness on the engine every build has: one replica on SQLite, agents configured with
 * controllerUrls. What PostgreSQL adds (three replicas, the lease moving) is test/e2e/replicas.test.ts.
 */
describe('a replica set of one on SQLite', () => {
  let fleet: ReplicaFleet;
  const context = () => fleet.context();

  beforeAll(async () => {
    fleet = await startReplicaFleet({ prefix: 'solo', count: 2, replicas: 1, engine: 'sqlite' });
  });
  afterAll(() => stopReplicaFleet(fleet));

  it('starts the replica from the shared config, gives agents its URL list, and finds the lease holder', async () => {
    const [replica] = fleet.replicas.replicas;
    expect(fleet.replicas.engine).toBe('sqlite');
    const config = JSON.parse(readFileSync(join(fleet.lab.dir, 'controller-config.json'), 'utf8')) as { database: string };
    expect(config.database).toBe(fleet.database);
    expect(existsSync(fleet.database)).toBe(true);
    for (const host of fleet.hosts) {
      expect(JSON.parse(readFileSync(host.paths.config, 'utf8'))).toMatchObject({ controllerUrl: replica!.url, controllerUrls: [replica!.url] });
      expect(websocketOf(host)).toBe(replica!.url);
    }
    expect(await fleet.replicas.waitForLeaseHolder({ context })).toBe(replica);
    expect(await fleet.replicas.connectedAgents(replica!)).toBe(2);
  });

  it('counts the manifests of a rollout per host in the database', async () => {
    const replica = fleet.replicas.any();
    const v2 = fleet.fixtures.systems.v2.path;
    await replica.client.createRelease({ name: 'solo-v2', hosts: Object.fromEntries(fleet.names.map((h) => [h, v2])) });
    const { id } = await replica.client.startRollout({ release: 'solo-v2', canary: 1, waves: ['100%'], bakeSeconds: 0, concurrency: 2, healthDeadlineSeconds: 30 });
    await replica.waitForRollout(id, 'succeeded', { timeoutMs: 60_000, context });
    expect(await rolloutManifestCounts(fleet.database, id)).toEqual({ 'solo-1': 1, 'solo-2': 1 });
  });

  it('SIGKILLs and restarts a replica on its port; the agents reconnect to it', async () => {
    const replica = fleet.replicas.any();
    const connects = fleet.hosts.map((h) => websocketConnects(h.agent!.lines));
    await replica.kill();
    expect(fleet.replicas.running).toEqual([]);
    expect(() => fleet.replicas.any()).toThrow(/no controller replica is running/);
    await replica.start();
    for (const [i, host] of fleet.hosts.entries()) await waitForWebsocket(host, (url) => url === replica.url, context, connects[i]);
    expect(await fleet.replicas.waitForLeaseHolder({ context })).toBe(replica);
  });
});

describe('replica set refusals', () => {
  let lab: Lab | undefined;
  afterAll(() => lab?.cleanup());

  it('refuses several replicas on one SQLite file, and a second controller beside replicas', async () => {
    lab = await Lab.start({ fixtures: await labFixtures() });
    await expect(lab.startReplicas({ count: 2, database: join(lab.dir, 'controller.sqlite') })).rejects.toThrow(/SQLite database serves one controller process, not 2/);
    expect(lab.replicas).toBeNull();
  });
});

describe('rolloutManifestCounts on PostgreSQL', () => {
  afterAll(() => stopPostgresTestServer());

  it('counts one rollout\'s manifests per host, leaving out other rollouts\' and manual ones', async () => {
    const database = await postgresTestDatabase();
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      await client.query(`insert into hosts (name, public_key) values ('pg-1', 'k1'), ('pg-2', 'k2')`);
      const manifest = `insert into manifests (host, version, store_path, action, rollout_id, issued_at, expires_at, envelope) values ($1, $2, '/nix/store/x', 'switch', $3, 0, 1, '{}')`;
      for (const [host, version, rollout] of [['pg-1', 1, 'r1'], ['pg-1', 2, 'r1'], ['pg-2', 1, 'r1'], ['pg-2', 2, 'r2'], ['pg-2', 3, null]] as const) {
        await client.query(manifest, [host, version, rollout]);
      }
    } finally {
      await client.end();
    }
    expect(await rolloutManifestCounts(database.url, 'r1')).toEqual({ 'pg-1': 2, 'pg-2': 1 });
    await database.drop();
  });
});
