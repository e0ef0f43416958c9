import { asc, eq, inArray } from 'drizzle-orm';
import {
  strictestPolicy,
  type HostRebootSettings,
  type ManifestRebootSettings,
  type SetRebootSettingsRequest,
  type TagRebootSettings,
} from '../../../shared/src/reboot-settings.js';
import { nextOpeningOfAll, type MaintenanceWindow } from '../../../shared/src/windows.js';
import type { Clock } from '../clock.js';
import type { TagSettingsRow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { chunkedStatement, rowKeysIn } from '../db/chunked.js';
import { appendEvent } from '../events.js';
import type { LifecycleRefusal } from './lifecycle.js';

/**
 * Reboot policy and maintenance windows set on the controller, per host and per tag, and how they
 * combine (the rules are stated in shared/src/reboot-settings.ts): a host's own value over its
 * tags', and among tags the most restrictive. The effective settings are signed into every
 * manifest the host gets (manifestRebootSettings), so they reach the agent with the assignment
 * and nobody on the way can change them.
 */

/** A host's own settings: what its hosts row holds (a wave's batch reads them with its members). */
export interface OwnSettings {
  tags: string[];
  rebootPolicy: HostRebootSettings['own']['policy'];
  maintenanceWindows: MaintenanceWindow[] | null;
}

interface Effective {
  policy: HostRebootSettings['effective']['policy'];
  policyFrom: string | null;
  windows: MaintenanceWindow[][] | null;
  windowsFrom: string[];
}

/** Host over tags; among tags the strictest policy and every tag's windows at once. */
export function combine(own: OwnSettings, tags: readonly TagSettingsRow[]): Effective {
  let policy: Effective['policy'] = own.rebootPolicy;
  let policyFrom: string | null = policy === null ? null : 'host';
  if (policy === null) {
    const set = tags.filter((t) => t.rebootPolicy !== null);
    policy = strictestPolicy(set.map((t) => t.rebootPolicy!));
    policyFrom = set
      .filter((t) => t.rebootPolicy === policy)
      .map((t) => `tag:${t.tag}`)
      .join(',') || null;
  }
  if (own.maintenanceWindows !== null) return { policy, policyFrom, windows: [own.maintenanceWindows], windowsFrom: ['host'] };
  const withWindows = tags.filter((t) => t.maintenanceWindows !== null);
  if (withWindows.length === 0) return { policy, policyFrom, windows: null, windowsFrom: [] };
  return { policy, policyFrom, windows: withWindows.map((t) => t.maintenanceWindows!), windowsFrom: withWindows.map((t) => `tag:${t.tag}`) };
}

/** Rows per statement of a batch read: far below either engine's limit on parameters. */
const ROWS_PER_STATEMENT = 500;

/**
 * Hosts' own settings by name, a statement prepared once per size (db/chunked.ts): a batch of
 * renewals reads them for hundreds of hosts, and drizzle building a 500-name `in (…)` list for
 * each one was a good part of such a batch's query building on PostgreSQL.
 */
const selectOwnSettings = chunkedStatement<{ host: string }, OwnSettings & { name: string }>('hosts_reboot_settings', (q, { hosts }, size) => {
  const returns = { name: hosts.name, tags: hosts.tags, rebootPolicy: hosts.rebootPolicy, maintenanceWindows: hosts.maintenanceWindows };
  return { query: q.select(returns).from(hosts).where(rowKeysIn(hosts.name, 'host', size)), returns };
});

/**
 * What a manifest's reboot settings are made of besides tag settings, when the caller has read it
 * already (a wave's batch, with its members): the host's own settings (its hosts row), and
 * whether its rollout asks its hosts to activate only within their windows (the rollout's spec).
 */
export interface RebootInputs {
  own: OwnSettings;
  windowsForAll: boolean;
}

/**
 * What the manifests for a batch of hosts (issued by rollouts, or by hand) carry, read in the
 * caller's transaction with one statement per kind of row, whatever the batch's size: the hosts'
 * own settings, the settings of their tags, and whether each rollout asked its hosts to activate
 * only within their windows (its spec is JSON, read here rather than with either engine's JSON
 * functions; a wave's hosts share one rollout). An item's `read` inputs are not read again.
 */
export async function manifestRebootSettings(
  store: Store,
  batch: ReadonlyArray<{ host: string; rolloutId: string | null; read?: RebootInputs }>,
): Promise<(host: string, rolloutId: string | null) => ManifestRebootSettings> {
  const { rollouts, tagSettings } = store.t;
  const own = new Map<string, OwnSettings>();
  const windowsForAll = new Map<string, boolean>();
  for (const { host, rolloutId, read } of batch) {
    if (!read) continue;
    own.set(host, read.own);
    if (rolloutId !== null) windowsForAll.set(rolloutId, read.windowsForAll);
  }
  const unread = [...new Set(batch.filter((item) => !own.has(item.host)).map((item) => item.host))];
  if (unread.length > 0) for (const { name, ...settings } of await selectOwnSettings(store, unread.map((host) => ({ host })))) own.set(name, settings);
  const tagNames = [...new Set([...own.values()].flatMap((settings) => settings.tags))];
  const byTag = new Map<string, TagSettingsRow>();
  for (let i = 0; i < tagNames.length; i += ROWS_PER_STATEMENT) {
    for (const row of await store.q.select().from(tagSettings).where(inArray(tagSettings.tag, tagNames.slice(i, i + ROWS_PER_STATEMENT)))) byTag.set(row.tag, row);
  }
  const rolloutIds = [...new Set(batch.map((item) => item.rolloutId).filter((id): id is string => id !== null && !windowsForAll.has(id)))];
  for (let i = 0; i < rolloutIds.length; i += ROWS_PER_STATEMENT) {
    const rows = await store.q
      .select({ id: rollouts.id, spec: rollouts.spec })
      .from(rollouts)
      .where(inArray(rollouts.id, rolloutIds.slice(i, i + ROWS_PER_STATEMENT)));
    for (const { id, spec } of rows) windowsForAll.set(id, (spec as { activateWithinWindows?: unknown } | null)?.activateWithinWindows === true);
  }
  return (host, rolloutId) => {
    const settings = own.get(host);
    // In tag order, as the operator views list them (combine names the tags a value came from in this order).
    const tags = settings ? [...new Set(settings.tags)].flatMap((tag) => byTag.get(tag) ?? []).sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0)) : [];
    const effective = settings ? combine(settings, tags) : { policy: null, windows: null };
    return { policy: effective.policy, windows: effective.windows, windowsForAll: rolloutId !== null && windowsForAll.get(rolloutId) === true };
  };
}

function tagView(row: TagSettingsRow): TagRebootSettings {
  return { tag: row.tag, policy: row.rebootPolicy, windows: row.maintenanceWindows, maxRebooting: row.maxRebooting };
}

async function ownSettings(store: Store, host: string): Promise<OwnSettings | undefined> {
  const { hosts } = store.t;
  const [own] = await store.q
    .select({ tags: hosts.tags, rebootPolicy: hosts.rebootPolicy, maintenanceWindows: hosts.maintenanceWindows })
    .from(hosts)
    .where(eq(hosts.name, host))
    .limit(1);
  return own;
}

async function settingsOfTags(store: Store, tags: readonly string[]): Promise<TagSettingsRow[]> {
  if (tags.length === 0) return [];
  const { tagSettings } = store.t;
  return store.q
    .select()
    .from(tagSettings)
    .where(inArray(tagSettings.tag, [...tags]))
    .orderBy(asc(tagSettings.tag));
}

export async function hostRebootSettings(store: Store, clock: Clock, host: string): Promise<HostRebootSettings | null> {
  const own = await ownSettings(store, host);
  if (!own) return null;
  const tags = await settingsOfTags(store, own.tags);
  const effective = combine(own, tags);
  const opens = effective.windows === null ? new Date(clock.now()) : nextOpeningOfAll(effective.windows, new Date(clock.now()));
  return {
    host,
    own: { policy: own.rebootPolicy, windows: own.maintenanceWindows },
    tags: tags.map(tagView),
    effective: {
      ...effective,
      windowsOpenAt: opens?.toISOString() ?? null,
      locks: tags.filter((t) => t.maxRebooting !== null).map((t) => ({ tag: t.tag, maxRebooting: t.maxRebooting! })),
    },
  };
}

export async function listTagSettings(store: Store): Promise<TagRebootSettings[]> {
  const { tagSettings } = store.t;
  return (await store.q.select().from(tagSettings).orderBy(asc(tagSettings.tag))).map(tagView);
}

export async function tagRebootSettings(store: Store, tag: string): Promise<TagRebootSettings | null> {
  const { tagSettings } = store.t;
  const [row] = await store.q.select().from(tagSettings).where(eq(tagSettings.tag, tag)).limit(1);
  return row ? tagView(row) : null;
}

/** Absent fields keep their value; null clears. Applies to the next manifest each affected host gets. */
export async function setHostRebootSettings(
  store: Store,
  clock: Clock,
  host: string,
  request: SetRebootSettingsRequest,
  actor: string,
): Promise<{ ok: true } | LifecycleRefusal> {
  if (request.maxRebooting !== undefined) {
    return { ok: false, status: 409, code: 'not-for-hosts', message: 'maxRebooting is a reboot lock over a tag (or a rollout), not a setting of one host' };
  }
  const { hosts } = store.t;
  return store.transaction(async (tx): Promise<{ ok: true } | LifecycleRefusal> => {
    const [row] = await tx.select({ name: hosts.name }).from(hosts).where(eq(hosts.name, host)).limit(1);
    if (!row) return { ok: false, status: 404, code: 'unknown-host', message: `no host named ${JSON.stringify(host)}` };
    const set: Partial<typeof hosts.$inferInsert> = {};
    if (request.policy !== undefined) set.rebootPolicy = request.policy;
    if (request.windows !== undefined) set.maintenanceWindows = request.windows;
    if (Object.keys(set).length > 0) await tx.update(hosts).set(set).where(eq(hosts.name, host));
    await appendEvent(store, { host, at: clock.now(), kind: 'reboot-settings-set', actor, data: { ...request } });
    return { ok: true as const };
  });
}

export async function setTagRebootSettings(store: Store, clock: Clock, tag: string, request: SetRebootSettingsRequest, actor: string): Promise<TagRebootSettings> {
  const { tagSettings } = store.t;
  const now = clock.now();
  return store.transaction(async (tx) => {
    const [before] = await tx.select().from(tagSettings).where(eq(tagSettings.tag, tag)).limit(1);
    const next = {
      tag,
      rebootPolicy: request.policy !== undefined ? request.policy : (before?.rebootPolicy ?? null),
      maintenanceWindows: request.windows !== undefined ? request.windows : (before?.maintenanceWindows ?? null),
      maxRebooting: request.maxRebooting !== undefined ? request.maxRebooting : (before?.maxRebooting ?? null),
      updatedAt: now,
      updatedBy: actor,
    };
    if (next.rebootPolicy === null && next.maintenanceWindows === null && next.maxRebooting === null) await tx.delete(tagSettings).where(eq(tagSettings.tag, tag));
    else await tx.insert(tagSettings).values(next).onConflictDoUpdate({ target: tagSettings.tag, set: next });
    await appendEvent(store, { host: null, at: now, kind: 'reboot-settings-set', actor, data: { tag, ...request } });
    return tagView(next);
  });
}
