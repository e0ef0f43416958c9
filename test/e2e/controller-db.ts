import Database from 'better-sqlite3';
import { join } from 'node:path';
import { nodeEd25519 } from '../../shared/src/ed25519.js';
import { signEnvelope, type Envelope } from '../../shared/src/envelope.js';
import type { NamedSecretKey } from '../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE, PROTOCOL_VERSION, type ManifestPayload } from '../../shared/src/protocol.js';
import type { Lab } from '../lab/lab.js';

/** A lab, whose controller keeps its database in the lab's directory, or the database file itself (a controller started in-process). */
export type ControllerDbLocation = Lab | string;

/**
 * A controller's SQLite database as an attacker who took the controller's files would use it:
 * opened beside the running controller (WAL), rows written directly, nothing the controller's
 * own code checks on the way in.
 */
export function withControllerDb<T>(lab: ControllerDbLocation, use: (db: Database.Database) => T): T {
  const db = new Database(typeof lab === 'string' ? lab : join(lab.dir, 'controller', 'controller.sqlite'));
  db.pragma('busy_timeout = 5000');
  try {
    return use(db);
  } finally {
    db.close();
  }
}

/** The envelope the controller stored (and sent) as manifest `version` of `host`. */
export function storedEnvelope(lab: ControllerDbLocation, host: string, version: number): Envelope {
  return withControllerDb(lab, (db) => {
    const row = db.prepare('select envelope from manifests where host = ? and version = ?').get(host, version) as { envelope: string } | undefined;
    if (!row) throw new Error(`the controller has no manifest v${version} for ${host}`);
    return JSON.parse(row.envelope) as Envelope;
  });
}

/**
 * Appends a manifest row carrying `envelope` and makes it the host's desired state, as a tampered
 * database would: the controller then serves the envelope, as it is, to the host's agent.
 * Returns the row's version (the controller's sequence; the envelope says what it says).
 */
export function serveTampered(lab: ControllerDbLocation, host: string, envelope: Envelope, storePath: string): number {
  return withControllerDb(lab, (db) =>
    db.transaction(() => {
      const { next } = db.prepare('select coalesce(max(version), 0) + 1 as next from manifests where host = ?').get(host) as { next: number };
      const now = Date.now();
      db.prepare(
        `insert into manifests (host, version, store_path, action, rollout_id, issued_at, expires_at, envelope)
         values (?, ?, ?, 'safe-switch', null, ?, ?, ?)`,
      ).run(host, next, storePath, now, now + 24 * 3600_000, JSON.stringify(envelope));
      db.prepare('update hosts set desired_version = ? where name = ?').run(next, host);
      return next;
    })(),
  );
}

/**
 * An assignment as whoever holds a signing key would write it: a safe-switch outside any rollout,
 * issued now and valid for an hour, unless `fields` say otherwise.
 */
export function assignmentPayload(fields: Pick<ManifestPayload, 'host' | 'version' | 'storePath' | 'statement'> & Partial<ManifestPayload>): ManifestPayload {
  const now = Date.now();
  return {
    protocol: PROTOCOL_VERSION,
    action: 'safe-switch',
    rolloutId: null,
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 3600_000).toISOString(),
    ...fields,
  };
}

/** `payload` signed by `key` the way the controller signs assignments. */
export function signAssignment(payload: ManifestPayload, key: NamedSecretKey): Envelope {
  return signEnvelope(MANIFEST_PAYLOAD_TYPE, Buffer.from(JSON.stringify(payload), 'utf8'), [key], nodeEd25519);
}
