import { afterEach, describe, expect, it } from 'vitest';
import type { Store } from '../../../controller/src/db/store.js';
import { ManifestBus, type PublishedManifest } from '../../../controller/src/manifests/bus.js';
import { announceIssued, pack, startManifestRelay, unpack } from '../../../controller/src/replicas/manifest-relay.js';
import { silentLogger } from '../../../shared/src/logger.js';
import { replicaDatabasePerTest } from '../postgres-database.js';
import { MAX_PAYLOAD_BYTES } from '../../../controller/src/replicas/notifications.js';

const envelope = (host: string, version: number) => JSON.stringify({ payloadType: 'test', payload: `${host}:${version}`, signatures: [] });

async function issue(store: Store, host: string, version: number): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.insert(store.t.hosts).values({ name: host, publicKey: 'key' }).onConflictDoNothing();
    await tx.insert(store.t.manifests).values({
      host,
      version,
      storePath: `/nix/store/${'a'.repeat(32)}-system`,
      action: 'switch',
      issuedAt: 1,
      expiresAt: 2,
      envelope: envelope(host, version),
    });
    await announceIssued(store, [{ host, version }]);
  });
}

describe('manifests issued on one replica reach agents served by another', () => {
  const shared = replicaDatabasePerTest();
  const stops: Array<() => Promise<void>> = [];
  // Registered after the shared hooks, so it runs before them: relays stop before their stores close.
  afterEach(async () => {
    await Promise.all(stops.splice(0).map((stop) => stop()));
  });

  it('relays a committed manifest to the bus of the replica serving its host, with the stored envelope', async () => {
    const a = await shared.replica('a');
    const b = await shared.replica('b');
    const bus = new ManifestBus();
    const seen: PublishedManifest[] = [];
    bus.onPublish((manifest) => seen.push(manifest));
    stops.push(await startManifestRelay({ store: b, bus, serves: (host) => host !== 'elsewhere', servedHosts: () => [], logger: silentLogger() }));

    // Rolled back: announced inside the transaction, so never delivered.
    await expect(
      a.transaction(async () => {
        await issue(a, 'web-1', 1);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await issue(a, 'elsewhere', 1);
    await issue(a, 'web-1', 2);
    await expect.poll(() => seen.map((m) => `${m.host}:${m.version}`)).toEqual(['web-1:2']);
    expect(seen[0]!.envelopeJson).toBe(envelope('web-1', 2));
    expect(seen[0]!.envelope).toEqual(JSON.parse(envelope('web-1', 2)));
  });

  it('ignores the replica\'s own announcements: its bus had them at commit', async () => {
    const a = await shared.replica('a');
    const other = await shared.replica('other');
    const bus = new ManifestBus();
    const seen: string[] = [];
    bus.onPublish((manifest) => seen.push(`${manifest.host}:${manifest.version}`));
    // A second subscriber proves both announcements were delivered to this replica before the check.
    const delivered: string[] = [];
    stops.push(await a.notifications.subscribe('shoal_manifests', (payload) => delivered.push(payload)));
    stops.push(await startManifestRelay({ store: a, bus, serves: () => true, servedHosts: () => [], logger: silentLogger() }));
    await issue(a, 'web-1', 1);
    await issue(other, 'web-2', 1);
    await expect.poll(() => delivered.length).toBe(2);
    await expect.poll(() => seen).toEqual(['web-2:1']);
  });
});

describe('announcement payloads', () => {
  it('pack as many host:version pairs as fit in a notification, and unpack to the same list', () => {
    const issued = Array.from({ length: 500 }, (_, i) => ({ host: `host-${i}`, version: i + 1 }));
    const payloads = pack('replica-7', issued);
    expect(payloads.length).toBeGreaterThan(1);
    for (const payload of payloads) expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    const unpacked = payloads.map(unpack);
    expect(new Set(unpacked.map((u) => u.replicaId))).toEqual(new Set(['replica-7']));
    expect(unpacked.flatMap((u) => u.issued)).toEqual(issued);
    expect(pack('r', [])).toEqual([]);
  });
});
