import { describe, expect, it } from 'vitest';
import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { ManifestPayload } from '../../../shared/src/protocol.js';
import { verifyReleaseStatement } from '../../../shared/src/release-statement.js';
import type { ManifestRow } from '../../../controller/src/db/schema.js';
import { sql } from 'drizzle-orm';
import { generateNamedKey } from '../../../shared/src/keys.js';
import { desiredManifest, eventsOf, execute, signedBundle } from '../helpers.js';
import { lab, NEW, OLD, type Lab } from './engine-lab.js';

function payloadOf(row: ManifestRow): ManifestPayload {
  const envelope = JSON.parse(row.envelope) as { payload: string };
  return ManifestPayload.parse(JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')));
}

/** The release a manifest's statement names, after checking it verifies under CI's key for that host and path. */
function statementRelease(l: Lab, row: ManifestRow): string {
  const verified = verifyReleaseStatement(payloadOf(row).statement, { host: row.host, storePath: row.storePath }, [l.ctl.ciKey], nodeEd25519);
  if (!verified.valid) throw new Error(verified.message);
  return verified.statement.release;
}

const withheld = async (l: Lab, host: string) => (await eventsOf(l.ctl.store, 'manifest-withheld', { host })).map((event) => event.data);

describe('rollouts in two-key mode: every manifest carries a CI statement', () => {
  it('issues each host the statement of the rollout’s release', async () => {
    const l = await lab(3, undefined, { mode: 'two-key' });
    await l.start({ waves: ['100%'] });
    for (const host of l.names) expect(statementRelease(l, (await desiredManifest(l.ctl.store, host))!)).toBe('rel-1');
  });

  it('rolls back with the statement that authorised the previous system', async () => {
    const l = await lab(2, undefined, { mode: 'two-key' });
    const id = await l.start({ waves: ['100%'], onFailure: 'rollback' });
    await l.answer((host) => (host === 'h1' ? 'rolled-back' : 'healthy'));
    expect((await l.status(id)).state).toBe('rolling-back');
    const back = (await desiredManifest(l.ctl.store, 'h2'))!;
    expect(back.storePath).toBe(OLD(2));
    expect(statementRelease(l, back)).toBe('rel-0');
  });

  it('does not roll a host back to a system no statement authorises, and logs why', async () => {
    const l = await lab(2, undefined, { mode: 'two-key', release: 'bundle-without-old' });
    const id = await l.start({ waves: ['100%'], onFailure: 'rollback' });
    await l.answer((host) => (host === 'h1' ? 'rolled-back' : 'healthy'));
    const status = await l.status(id);
    // Nothing to wait for: no rollback manifest went out.
    expect(status.state).toBe('rolled-back');
    expect((await desiredManifest(l.ctl.store, 'h2'))!.storePath).toBe(NEW(2));
    expect(await withheld(l, 'h2')).toEqual([{ storePath: OLD(2), reason: `no CI-signed release statement authorises ${OLD(2)} for h2` }]);
    const [rollingBack] = await eventsOf(l.ctl.store, 'rollout-rolling-back');
    const data = rollingBack!.data as { hosts: number; withheld: string[] };
    expect({ hosts: data.hosts, withheld: data.withheld.sort() }).toEqual({ hosts: 0, withheld: ['h1', 'h2'] });
  });

  it('does not withdraw an offline host to an unauthorised system, and logs why', async () => {
    const l = await lab(1, undefined, { mode: 'two-key', release: 'bundle-without-old' });
    l.ctl.deps.presence.websocketClosed('h1');
    const id = await l.start({ waves: ['100%'], offline: { waitSeconds: 30, then: 'skip' } });
    l.ctl.clock.advance(30_000);
    await l.engine.tickAll();
    expect((await l.status(id)).state).toBe('succeeded');
    expect(await l.manifestsOf('h1')).toBe(1);
    expect(await withheld(l, 'h1')).toEqual([{ storePath: OLD(1), reason: `no CI-signed release statement authorises ${OLD(1)} for h1` }]);
  });

  it('fails, without issuing, a host whose release holds no statement (a release stored before statements)', async () => {
    const l = await lab(2, undefined, { mode: 'two-key' });
    await execute(l.ctl.store, sql`update release_hosts set statement = null where release = 'rel-1' and host = 'h1'`);
    const id = await l.start({ waves: ['100%'], failureThreshold: { count: 1 } });
    const h1 = (await l.status(id)).waves[0]!.hosts.find((h) => h.host === 'h1')!;
    expect(h1).toMatchObject({ state: 'failed', reason: `no CI-signed release statement authorises ${NEW(1)} for h1`, manifestVersion: null });
    expect(await l.manifestsOf('h1')).toBe(0);
    await l.answer('healthy');
    expect(await l.status(id)).toMatchObject({ state: 'succeeded', failures: 1 });
  });

  it('fails only the host whose release statement is signed by a key no longer trusted, and issues the others', async () => {
    const l = await lab(3, undefined, { mode: 'two-key' });
    // h1's statement as a key trusted when the release was stored would have signed it, since removed from trustedReleaseKeys.
    const retired = signedBundle(generateNamedKey('ci-release-0'), 'rel-1', [{ host: 'h1', storePath: NEW(1) }]).hosts[0]!.statement;
    await execute(l.ctl.store, sql`update release_hosts set statement = ${JSON.stringify(retired)} where release = 'rel-1' and host = 'h1'`);
    const id = await l.start({ waves: ['100%'], failureThreshold: { count: 1 } });
    const hosts = (await l.status(id)).waves[0]!.hosts;
    expect(hosts.find((h) => h.host === 'h1')).toMatchObject({
      state: 'failed',
      reason: `no CI-signed release statement authorises ${NEW(1)} for h1 (statements for it are stored, but none is signed by a key in trustedReleaseKeys any more)`,
      manifestVersion: null,
    });
    expect(await l.manifestsOf('h1')).toBe(0);
    for (const host of ['h2', 'h3']) {
      expect(hosts.find((h) => h.host === host)).toMatchObject({ state: 'issued' });
      expect(statementRelease(l, (await desiredManifest(l.ctl.store, host))!)).toBe('rel-1');
    }
  });

  it('halts when the hosts no statement authorises exceed the failure threshold, even with nothing left in flight', async () => {
    const l = await lab(2, undefined, { mode: 'two-key' });
    await execute(l.ctl.store, sql`update release_hosts set statement = null where release = 'rel-1'`);
    const id = await l.start({ waves: ['100%'] });
    // Every host of the wave failed before it was issued: nothing will report, so nothing later re-checks.
    expect(await l.status(id)).toMatchObject({ state: 'halted', failures: 2, reason: '2 host(s) failed; at most 0 allowed' });
    expect((await l.manifestsOf('h1')) + (await l.manifestsOf('h2'))).toBe(0);
  });
});

describe('rollouts in single-key mode', () => {
  it('rolls back to a system no release names with a statement the controller signs itself', async () => {
    const l = await lab(1, undefined, { mode: 'single-key' });
    const id = await l.start({ waves: ['100%'], onFailure: 'rollback' });
    await l.answer('rolled-back');
    expect((await l.status(id)).state).toBe('rolling-back');
    const back = (await desiredManifest(l.ctl.store, 'h1'))!;
    const statement = verifyReleaseStatement(payloadOf(back).statement, { host: 'h1', storePath: OLD(1) }, [l.ctl.singleKey!], nodeEd25519);
    expect(statement).toMatchObject({ valid: true, keyId: 'single-release-1', statement: { release: 'adhoc', floor: 0 } });
  });
});
