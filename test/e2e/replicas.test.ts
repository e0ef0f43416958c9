import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperatorRoutes } from '../../shared/src/operator-api.js';
import type { RolloutSpecInput } from '../../shared/src/rollout-api.js';
import { LAB_HEALTH_CHECK } from '../lab/agent-config.js';
import type { LabController } from '../lab/controller.js';
import { rolloutManifestCounts } from '../lab/fleet-database.js';
import type { LabHost } from '../lab/host.js';
import { websocketConnects } from '../lab/replicas.js';
import { waitFor } from '../lab/wait.js';
import { GATE_CHECK, nextSeq, outboxReports, reportEvents } from './deploy-helpers.js';
import { hostsOn, startReplicaFleet, stopReplicaFleet, waitForWebsocket, websocketOf, type ReplicaFleet } from './replicas-fleet.js';
import { eventsOf, only } from './rollouts-fleet.js';

/** Whether an agent log line says it accepted manifest `version`. */
function acceptedLine(version: number) {
  return (line: string): boolean => {
    try {
      const entry = JSON.parse(line) as { msg?: unknown; version?: unknown };
      return entry.msg === 'manifest accepted' && entry.version === version;
    } catch {
      return false;
    }
  };
}

/**
 * Issue 16, tests 2–4: three controller replicas on one PostgreSQL, six agents spread across them
 * (host i dials replica i mod 3 first), and two more hosts for the push and the outage cases. One
 * fleet for the whole file: the cases run in order and leave every replica running.
 */
describe('controller replicas on one PostgreSQL (issue 16)', () => {
  let fleet: ReplicaFleet;
  /** Its only controller is replica B, its poll interval ten minutes: what it gets, it gets by push from B. */
  let pushHost: LabHost;
  /** Holds a deployment in its health gate while the database goes away. */
  let gateHost: LabHost;
  const context = () => fleet.context();

  beforeAll(async () => {
    // The agent's health gate includes getting a report acknowledged: with the lab's 5 s, a host whose
    // gate straddles a replica's death or the database's outage would (rightly) roll itself back.
    fleet = await startReplicaFleet({ prefix: 'ha', count: 6, replicas: 3, engine: 'postgres', agent: { healthDeadlineMs: 30_000 } });
    const [, b] = fleet.replicas.replicas;
    pushHost = await fleet.lab.addHost('push-1', { bootstrap: fleet.fixtures.systems.base });
    await pushHost.start({ config: { controllerUrl: b!.url, controllerUrls: [b!.url], pollIntervalMs: 600_000, longPollSeconds: 0 } });
    gateHost = await fleet.lab.addHost('gate-1', { bootstrap: fleet.fixtures.systems.base });
    await gateHost.start({ config: { healthChecks: [LAB_HEALTH_CHECK, GATE_CHECK], healthDeadlineMs: 120_000 } });
    fleet.hosts.push(pushHost, gateHost);
    await Promise.all([pushHost, gateHost].map((host) => waitForWebsocket(host, (url) => url !== null, context)));
  });
  afterAll(() => stopReplicaFleet(fleet));

  it('spreads the agents: each replica holds websockets, and exactly one holds the engine lease', async () => {
    const { replicas } = fleet;
    const spread = Object.fromEntries(replicas.replicas.map((r) => [replicas.name(r), hostsOn(fleet, r).map((h) => h.name)]));
    expect(Object.values(spread).every((hosts) => hosts.length > 0), JSON.stringify(spread)).toBe(true);
    await replicas.waitForLeaseHolder({ context });
  });

  describe('test 3: a manifest set through one replica is pushed by another', () => {
    it('reaches an agent whose only controller is replica B, over its open websocket, when set through replica A', async () => {
      const [a, b] = fleet.replicas.replicas as [LabController, LabController];
      expect(websocketOf(pushHost)).toBe(b.url);
      const connects = websocketConnects(pushHost.agent!.lines);
      const v2 = fleet.fixtures.systems.v2.path;

      const manifest = await a.client.setDesired('push-1', v2);
      // Its poll interval is ten minutes and long polls are off: only a push over the websocket it
      // holds to B can bring the manifest before this wait gives up.
      await pushHost.agent!.waitForLine(acceptedLine(manifest.version), 30_000, `"manifest accepted" for version ${manifest.version}`);
      // The same websocket: no reconnect, on which B would have re-sent the desired manifest.
      expect(websocketConnects(pushHost.agent!.lines)).toBe(connects);
      expect(websocketOf(pushHost)).toBe(b.url);
      await a.waitForPhase('push-1', manifest.version, 'healthy', 30_000, context);
      expect(pushHost.currentSystem()).toBe(v2);
    });
  });

  describe('test 2: a rollout survives the death of replicas', () => {
    const spec = (release: string): RolloutSpecInput => ({ release, canary: 1, waves: ['50%', '100%'], bakeSeconds: 1, concurrency: 1, healthDeadlineSeconds: 60 });
    const sixHosts = () => fleet.names;

    it('completes a rollout over 6 hosts after the replica holding the engine lease is SIGKILLed mid-wave; each host got exactly one manifest', async () => {
      const { replicas } = fleet;
      const v2 = fleet.fixtures.systems.v2.path;
      const holder = await replicas.waitForLeaseHolder({ context });
      const observer = replicas.running.find((r) => r !== holder)!;
      await observer.client.createRelease({ name: 'ha-v2', hosts: Object.fromEntries(sixHosts().map((h) => [h, v2])) });
      const { id } = await observer.client.startRollout(spec('ha-v2'));

      // The last wave (3 hosts, one at a time): one in flight, the others not yet issued.
      await observer.waitForRollout(id, 'running', {
        timeoutMs: 90_000,
        intervalMs: 25,
        predicate: (s) => s.waveIndex === 2 && s.waves[2]!.counts.inProgress === 1 && s.waves[2]!.counts.pending > 0,
        context,
      });
      await holder.kill();
      const successor = await replicas.waitForLeaseHolder({ except: holder, context });
      expect(successor).not.toBe(holder);

      const done = await observer.waitForRollout(id, 'succeeded', { timeoutMs: 120_000, context });
      expect(done.waves.flatMap((w) => w.hosts.map((h) => h.state))).toEqual(sixHosts().map(() => 'healthy'));

      // Exactly one manifest of this rollout per host, in the database itself.
      expect(await rolloutManifestCounts(fleet.database, id)).toEqual(Object.fromEntries([...sixHosts()].sort().map((h) => [h, 1])));
      const events = await observer.client.rolloutEvents(id);
      for (const name of sixHosts()) {
        only(events, 'rollout-host-issued', name);
        only(events, 'rollout-host-healthy', name);
        const host = fleet.lab.hosts.get(name)!;
        // Activated once: no host was told twice.
        expect([name, host.activations().filter((a) => a.path === v2 && a.action === 'test').length], host.agentOutput(40)).toEqual([name, 1]);
        expect(host.currentSystem()).toBe(v2);
      }
      expect(eventsOf(events, 'rollout-host-issued').map((e) => e.host).sort()).toEqual([...sixHosts()].sort());

      // Back in the set: it rejoins as a replica without the lease.
      await holder.start();
      expect(await replicas.waitForLeaseHolder({ context })).toBe(successor);
    });

    it('moves the agents of a SIGKILLed replica to the others, and they keep deploying', async () => {
      const { replicas } = fleet;
      const holder = await replicas.waitForLeaseHolder({ context });
      // A replica with agents that is not the engine holder: this case is about websockets alone.
      const victim = replicas.running
        .filter((r) => r !== holder)
        .map((r) => ({ replica: r, hosts: hostsOn(fleet, r).filter((h) => fleet.names.includes(h.name)) }))
        .sort((x, y) => y.hosts.length - x.hosts.length)[0]!;
      expect(victim.hosts.length, replicas.diagnostics(5)).toBeGreaterThan(0);
      const connects = new Map(victim.hosts.map((h) => [h, websocketConnects(h.agent!.lines)]));

      await victim.replica.kill();
      for (const host of victim.hosts) {
        await waitForWebsocket(host, (url) => url !== victim.replica.url, context, connects.get(host));
      }

      const v3 = fleet.fixtures.systems.v3.path;
      const other = replicas.running[0]!;
      for (const host of victim.hosts) {
        const manifest = await other.client.setDesired(host.name, v3);
        await other.waitForPhase(host.name, manifest.version, 'healthy', 60_000, context);
        expect(host.currentSystem()).toBe(v3);
      }
      await victim.replica.start();
    });
  });

  describe('test 4: PostgreSQL goes away and comes back', () => {
    it('refuses writes with a clear error while it is down; agents keep their reports and deliver each once when it is back', async () => {
      const { replicas, lab } = fleet;
      const postgres = lab.postgres!;
      const v2 = fleet.fixtures.systems.v2.path;
      const manifest = await replicas.any().client.setDesired('gate-1', v2);
      // Acknowledged 'checking' (the gate's reachability proof); the gate itself is still closed.
      await replicas.any().waitForHost('gate-1', 'in its health gate', (s) => s.reportedVersion === manifest.version && s.phase === 'checking', 60_000, context);

      expect(replicas.running).toHaveLength(3);
      await postgres.stopServer();
      for (const replica of replicas.running) {
        const refused = await replica.client.request('PUT', OperatorRoutes.desired('ha-1'), { storePath: v2, action: 'safe-switch' });
        expect([replicas.name(replica), refused.status], JSON.stringify(refused.body)).toEqual([replicas.name(replica), 503]);
        expect(refused.body).toMatchObject({ error: { code: 'database-unavailable', message: expect.stringMatching(/database/i) } });
        // So a load balancer drains it.
        expect((await fetch(`${replica.url}/healthz`)).status).toBe(503);
      }

      // The deployment finishes without a database; its last reports wait in the agent's outbox.
      writeFileSync(join(gateHost.paths.run, 'lab', 'release-gate'), '');
      await gateHost.waitFor('activation finished while the database is down', () => {
        const state = gateHost.agentState() as { lastResult?: { manifestVersion: number; phase: string } } | null;
        return state?.lastResult?.manifestVersion === manifest.version && state.lastResult.phase === 'healthy';
      }, 120_000);
      await gateHost.waitFor('the healthy report in the outbox', () => outboxReports(gateHost).some((r) => r.phase === 'healthy'));
      const waiting = outboxReports(gateHost).filter((r) => r.manifestVersion === manifest.version).map((r) => r.phase);
      expect(waiting).toEqual(expect.arrayContaining(['committing', 'healthy']));

      // They refused and went on running: nothing to restart when the database is back.
      expect(replicas.running, replicas.diagnostics(10)).toHaveLength(3);
      const backAt = Date.now();
      await postgres.startServer();
      await replicas.waitForLeaseHolder({ context, timeoutMs: 60_000 });
      for (const replica of replicas.running) {
        await waitFor(`${replicas.name(replica)}: /healthz 200 again`, async () => (await fetch(`${replica.url}/healthz`)).status === 200, { timeoutMs: 60_000, context });
      }
      await replicas.any().waitForHost('gate-1', 'the reports from the outage stored', (s) => s.reportedVersion === manifest.version && s.phase === 'healthy', 60_000, context);
      await gateHost.waitFor('an empty outbox', () => outboxReports(gateHost).length === 0, 60_000);

      // Every report the agent ever numbered is stored exactly once, none missing.
      const reports = reportEvents(await replicas.any().client.events('gate-1'));
      const made = nextSeq(gateHost) - 1;
      expect(reports.map((r) => r.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: made }, (_, i) => i + 1));
      const delivered = reports.filter((r) => r.manifestVersion === manifest.version && waiting.includes(r.phase));
      for (const report of delivered) expect(report.storedAt).toBeGreaterThanOrEqual(backAt);

      // Writes work again, through every replica, and reach the agents.
      // (The six hosts run v2 or v3 by now: base is a change for each.)
      for (const [i, replica] of replicas.running.entries()) {
        const name = fleet.names[i]!;
        const desired = await replica.client.setDesired(name, fleet.fixtures.systems.base.path);
        await replica.waitForPhase(name, desired.version, 'healthy', 60_000, context);
      }
    });
  });
});
