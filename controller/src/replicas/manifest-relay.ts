import { and, eq, inArray } from 'drizzle-orm';
import type { Envelope } from '../../../shared/src/envelope.js';
import type { Logger } from '../../../shared/src/logger.js';
import type { Store } from '../db/store.js';
import type { ManifestBus } from '../manifests/bus.js';
import { MAX_PAYLOAD_BYTES } from './notifications.js';

/**
 * Manifests issued on one replica reach agents whose connection another replica holds. The issuing
 * transaction announces `host version` pairs on a channel (PostgreSQL delivers them only if it
 * commits); every other replica reads the envelopes of the hosts it serves from the database and
 * hands them to its own ManifestBus, as if it had issued them. The issuer skips its own
 * announcements: its bus already had the manifests, with their envelopes, straight after commit.
 */
export const MANIFESTS_CHANNEL = 'shoal_manifests';
/** Hosts per query when reading manifests: far below either engine's limit on parameters. */
const HOSTS_PER_QUERY = 500;

export interface IssuedManifest {
  host: string;
  version: number;
}

/**
 * Call inside the issuing transaction: tells the other replicas, on commit, which manifests it
 * issued. Packs as many as fit into each notification (a wave issues thousands at once).
 */
export async function announceIssued(store: Store, issued: readonly IssuedManifest[]): Promise<void> {
  for (const payload of pack(store.replicaId, issued)) await store.notifications.publish(MANIFESTS_CHANNEL, payload);
}

export function pack(replicaId: string, issued: readonly IssuedManifest[]): string[] {
  const payloads: string[] = [];
  let current = replicaId;
  for (const { host, version } of issued) {
    const item = ` ${host}:${version}`;
    if (current !== replicaId && Buffer.byteLength(current + item) > MAX_PAYLOAD_BYTES) {
      payloads.push(current);
      current = replicaId;
    }
    current += item;
  }
  if (current !== replicaId) payloads.push(current);
  return payloads;
}

export function unpack(payload: string): { replicaId: string; issued: IssuedManifest[] } {
  const [replicaId = '', ...items] = payload.split(' ');
  const issued: IssuedManifest[] = [];
  for (const item of items) {
    // Host names have no colon or space (shared/src/names.ts).
    const at = item.lastIndexOf(':');
    const version = Number(item.slice(at + 1));
    if (at > 0 && Number.isSafeInteger(version)) issued.push({ host: item.slice(0, at), version });
  }
  return { replicaId, issued };
}

export interface RelayOptions {
  store: Store;
  bus: ManifestBus;
  /** Hosts this replica serves now (a websocket or a long-poll here): only theirs are read. */
  serves(host: string): boolean;
  /** All of them: after the listening connection was lost and came back, each gets its latest manifest again (agents ignore one they have). */
  servedHosts(): string[];
  logger: Logger;
}

/** Subscribes this replica to the others' announcements; resolves with the unsubscribe function. */
export async function startManifestRelay(options: RelayOptions): Promise<() => Promise<void>> {
  const { store, bus, logger } = options;
  const { manifests } = store.t;
  const { hosts } = store.t;
  const resync = async () => {
    const served = options.servedHosts();
    for (let i = 0; i < served.length; i += HOSTS_PER_QUERY) {
      const rows = await store.db
        .select({ host: manifests.host, version: manifests.version, envelope: manifests.envelope })
        .from(hosts)
        .innerJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)))
        .where(inArray(hosts.name, served.slice(i, i + HOSTS_PER_QUERY)));
      for (const row of rows) bus.publish({ host: row.host, version: row.version, envelopeJson: row.envelope, envelope: JSON.parse(row.envelope) as Envelope });
    }
  };
  const relay = async (issued: IssuedManifest[]) => {
    const wanted = issued.filter((item) => options.serves(item.host));
    if (wanted.length === 0) return;
    const rows = await store.db
      .select({ host: manifests.host, version: manifests.version, envelope: manifests.envelope })
      .from(manifests)
      .where(
        and(
          inArray(
            manifests.host,
            wanted.map((item) => item.host),
          ),
          inArray(manifests.version, [...new Set(wanted.map((item) => item.version))]),
        ),
      );
    const versionOf = new Map(wanted.map((item) => [item.host, item.version]));
    for (const row of rows) {
      if (versionOf.get(row.host) !== row.version) continue;
      bus.publish({ host: row.host, version: row.version, envelopeJson: row.envelope, envelope: JSON.parse(row.envelope) as Envelope });
    }
  };
  return store.notifications.subscribe(
    MANIFESTS_CHANNEL,
    (payload) => {
      const { replicaId, issued } = unpack(payload);
      if (replicaId === store.replicaId) return;
      relay(issued).catch((error: unknown) => logger.error({ err: error, manifests: issued.length }, 'relaying manifests another replica issued failed'));
    },
    {
      onResync: () =>
        void resync().catch((error: unknown) => logger.error({ err: error }, 'resending the latest manifests after the notification connection came back failed')),
    },
  );
}

