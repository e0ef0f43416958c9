import { and, eq, inArray } from 'drizzle-orm';
import { fromBase64, keyFingerprint } from '../../../shared/src/keys.js';
import { ACTIVE_ROLLOUT_STATES } from '../../../shared/src/rollout-api.js';
import { MAX_VERSION_STEP } from '../../../shared/src/protocol.js';
import type { Clock } from '../clock.js';
import type { Store } from '../db/store.js';
import { appendEvent } from '../events.js';
import { forgetUnknownHost, listUnknownHosts } from './unknown.js';

/**
 * An operator's changes to a host's identity: remove it, give it a new key (a reinstalled
 * machine), adopt an unknown host that tried to log in. Each is one transaction with its audit
 * event; the caller then ends the host's sessions and live socket (SessionStore.revokeHost).
 */

export type LifecycleRefusal = { ok: false; status: 404 | 409; code: string; message: string };

const fingerprintOf = (publicKey: string) => keyFingerprint(fromBase64(publicKey));

function noHost(name: string): LifecycleRefusal {
  return { ok: false, status: 404, code: 'unknown-host', message: `no host named ${JSON.stringify(name)}` };
}

/**
 * Deletes the host with everything that is only about it: manifests, reports, its own events, its
 * place in releases and finished rollouts. Refused while an active rollout includes it (abort or
 * finish that first): the rollout would otherwise wait for a host that no longer exists.
 */
export async function removeHost(store: Store, clock: Clock, name: string, actor: string): Promise<{ ok: true } | LifecycleRefusal> {
  const { hosts, rolloutHosts, rollouts } = store.t;
  return store.transaction(async (tx): Promise<{ ok: true } | LifecycleRefusal> => {
    const [host] = await tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, name)).limit(1);
    if (!host) return noHost(name);
    const [active] = await tx
      .select({ id: rollouts.id, state: rollouts.state })
      .from(rolloutHosts)
      .innerJoin(rollouts, eq(rollouts.id, rolloutHosts.rolloutId))
      .where(and(eq(rolloutHosts.host, name), inArray(rollouts.state, [...ACTIVE_ROLLOUT_STATES])))
      .limit(1);
    if (active) {
      return {
        ok: false,
        status: 409,
        code: 'host-in-rollout',
        message: `host ${JSON.stringify(name)} is part of rollout ${active.id}, which is ${active.state}; abort it or let it finish, then remove the host`,
      };
    }
    await tx.delete(hosts).where(eq(hosts.name, name));
    // Recorded without the host (its own events went with it), so the removal stays in the audit log.
    await appendEvent(store, { host: null, at: clock.now(), kind: 'host-removed', actor, data: { host: name, fingerprint: fingerprintOf(host.publicKey) } });
    return { ok: true };
  });
}

/**
 * A new key for a known host (reinstalled machine). Its history and desired state stay; the old
 * key stops working at once. The new machine's agent starts from version 0, which the next
 * manifests (above the controller's versions) satisfy within MAX_VERSION_STEP.
 */
export async function rekeyHost(
  store: Store,
  clock: Clock,
  name: string,
  publicKey: string,
  actor: string,
): Promise<{ ok: true; changed: boolean; fingerprint: string } | LifecycleRefusal> {
  const { hosts } = store.t;
  return store.transaction(async (tx) => {
    const [host] = await tx.select({ publicKey: hosts.publicKey }).from(hosts).where(eq(hosts.name, name)).limit(1);
    if (!host) return noHost(name);
    const fingerprint = fingerprintOf(publicKey);
    if (host.publicKey === publicKey) return { ok: true as const, changed: false, fingerprint };
    await tx.update(hosts).set({ publicKey }).where(eq(hosts.name, name));
    await appendEvent(store, { host: name, at: clock.now(), kind: 'host-rekeyed', actor, data: { fingerprint, previousFingerprint: fingerprintOf(host.publicKey) } });
    return { ok: true as const, changed: true, fingerprint };
  });
}

/**
 * Makes an unknown host that logged in (hosts/unknown.ts) a known one, with the key it logged in
 * with. When several keys tried that name the operator must say which (`fingerprint`): the names
 * of a fleet are no secret, and anyone may have tried one. The host's reported watermark becomes
 * its desired pointer (within MAX_VERSION_STEP), so its next manifest is one it accepts.
 */
export async function adoptHost(
  store: Store,
  clock: Clock,
  request: { name: string; fingerprint?: string | undefined; tags: string[]; actor: string },
): Promise<{ ok: true; fingerprint: string } | LifecycleRefusal> {
  const { hosts } = store.t;
  return store.transaction(async (tx): Promise<{ ok: true; fingerprint: string } | LifecycleRefusal> => {
    if ((await tx.select({ name: hosts.name }).from(hosts).where(eq(hosts.name, request.name)).limit(1)).length > 0) {
      return { ok: false, status: 409, code: 'host-exists', message: `host ${JSON.stringify(request.name)} is already known; to give it a new key use \`shoal host rekey\`` };
    }
    const candidates = await listUnknownHosts(store, request.name);
    if (candidates.length === 0) {
      return { ok: false, status: 404, code: 'unknown-host', message: `no unknown host named ${JSON.stringify(request.name)} has tried to connect; see \`shoal host unknown\`` };
    }
    const chosen = request.fingerprint === undefined ? candidates : candidates.filter((c) => c.fingerprint === request.fingerprint);
    if (chosen.length === 0) {
      return {
        ok: false,
        status: 409,
        code: 'fingerprint-mismatch',
        message: `no key with fingerprint ${request.fingerprint} tried to connect as ${JSON.stringify(request.name)}; seen: ${candidates.map((c) => c.fingerprint).join(', ')}`,
      };
    }
    if (chosen.length > 1) {
      return {
        ok: false,
        status: 409,
        code: 'ambiguous-key',
        message: `${chosen.length} different keys tried to connect as ${JSON.stringify(request.name)} (${chosen.map((c) => c.fingerprint).join(', ')}); check the host's key (the agent logs its fingerprint at start) and pass --fingerprint`,
      };
    }
    const host = chosen[0]!;
    const now = clock.now();
    const reported = host.highestVersion ?? 0;
    // A fresh database signed nothing for this host: the same bound as hosts/watermark.ts, from 0.
    const desiredVersion = reported > 0 && reported <= MAX_VERSION_STEP ? reported : null;
    await tx.insert(hosts).values({ name: request.name, publicKey: host.publicKey, tags: request.tags, enrolledAt: now, desiredVersion });
    await forgetUnknownHost(store, request.name);
    await appendEvent(store, {
      host: request.name,
      at: now,
      kind: 'host-adopted',
      actor: request.actor,
      data: { fingerprint: host.fingerprint, tags: request.tags, reportedVersion: host.highestVersion, reportedFloor: host.highestFloor },
    });
    return { ok: true, fingerprint: host.fingerprint };
  });
}
