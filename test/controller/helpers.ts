import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import nacl from 'tweetnacl';
import { expect } from 'vitest';
import { generateNamedKey, toBase64, type NamedSecretKey } from '../../shared/src/keys.js';
import { PROTOCOL_VERSION, challengeMessage, type ReleaseSource, type Report } from '../../shared/src/protocol.js';
import type { ReleaseBundle, ReleaseBuildHost } from '../../shared/src/release-statement.js';
import { signBuild } from '../lab/ci.js';
import { createOperatorToken } from '../../controller/src/auth/operator-tokens.js';
import type { Clock } from '../../controller/src/clock.js';
import { openStore, type Store } from '../../controller/src/db/store.js';
import { createDeps, type ControllerDeps, type DepsOptions } from '../../controller/src/deps.js';
import { registerHost } from '../../controller/src/hosts/enrollment.js';
import { createApp } from '../../controller/src/app.js';
import { createManifestSigner } from '../../controller/src/manifests/signer.js';
import { releaseTrust, type ReleaseTrust } from '../../controller/src/manifests/statements.js';
import type { DestinationPolicy } from '../../controller/src/webhooks/destination.js';
import type { EventRow, ManifestRow } from '../../controller/src/db/schema.js';
import { testDatabase } from './test-engine.js';

export class ManualClock implements Clock {
  constructor(public ms = Date.parse('2030-01-01T00:00:00Z')) {}
  now(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** An agent report about manifest version 1 (old → new system), stamped by its seq so each is distinct. */
export function sampleReport(seq: number, phase: Report['phase'], detail: Report['detail'] = {}): Report {
  return {
    seq,
    at: new Date(Date.UTC(2030, 0, 1, 0, 0, seq)).toISOString(),
    phase,
    manifestVersion: 1,
    storePath: storePath('new', 'a'),
    currentSystem: storePath('old', 'b'),
    detail,
  };
}

export function storePath(name = 'nixos-system-web-1', hashChar = 'a'): string {
  return `/nix/store/${hashChar.repeat(32)}-${name}`;
}

export interface TestController {
  dir: string;
  /** On the engine SHOAL_TEST_ENGINE names (test-engine.ts). */
  store: Store;
  deps: ControllerDeps;
  app: ReturnType<typeof createApp>;
  clock: ManualClock;
  /** Signs assignments (manifests). */
  controllerKey: NamedSecretKey;
  /** CI's release key: trusted in both modes. */
  ciKey: NamedSecretKey;
  /** The controller's own release key in single-key mode; null in two-key mode. */
  singleKey: NamedSecretKey | null;
  operatorToken: string;
  /** fetch-like call to app.request with the operator token. */
  operator(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

export type TrustMode = 'single-key' | 'two-key';

/** The keys of a test controller: single-key mode (the default, as most tests `set` arbitrary paths) or two-key mode trusting `ciKey`. */
export function testKeys(mode: TrustMode): { controllerKey: NamedSecretKey; ciKey: NamedSecretKey; singleKey: NamedSecretKey | null; trust: ReleaseTrust } {
  const controllerKey = generateNamedKey('controller-1');
  const ciKey = generateNamedKey('ci-release-1');
  const singleKey = mode === 'single-key' ? generateNamedKey('single-release-1') : null;
  // Single-key mode may trust CI keys too (a fleet moving to two-key mode): both kinds of release then work.
  return { controllerKey, ciKey, singleKey, trust: releaseTrust([ciKey], singleKey) };
}

export async function testController(
  options: {
    manifestTtlMs?: number;
    pollIntervalMs?: number;
    mode?: TrustMode;
    publicUrl?: string;
    cache?: DepsOptions['cache'];
    webhookDestinations?: DestinationPolicy;
  } = {},
): Promise<TestController> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-controller-test-'));
  const database = await testDatabase(dir);
  const store = await openStore({ database: database.database, replicaId: 'test' });
  const clock = new ManualClock();
  const { mode = 'single-key', ...rest } = options;
  const { controllerKey, ciKey, singleKey, trust } = testKeys(mode);
  const deps = createDeps({ store, signer: createManifestSigner(controllerKey), releaseTrust: trust, clock, ...rest });
  const app = createApp(deps);
  const { token: operatorToken } = await createOperatorToken(store, clock, 'test-admin');
  return {
    dir,
    store,
    deps,
    app,
    clock,
    controllerKey,
    ciKey,
    singleKey,
    operatorToken,
    operator: (path, init = {}) =>
      Promise.resolve(
        app.request(path, {
          ...init,
          headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
        }),
      ),
    async close() {
      deps.bus.releaseAll();
      await deps.presence.flush();
      await store.close();
      await database.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestHost {
  name: string;
  keys: nacl.SignKeyPair;
  publicKey: string;
}

export function newHostKeys(name: string): TestHost {
  const keys = nacl.sign.keyPair();
  return { name, keys, publicKey: toBase64(keys.publicKey) };
}

export async function registeredHost(ctl: TestController, name: string, tags: string[] = []): Promise<TestHost> {
  const host = newHostKeys(name);
  const outcome = await registerHost(ctl.store, ctl.clock, { name, publicKey: host.publicKey, tags, actor: 'test' });
  expect(outcome.ok).toBe(true);
  return host;
}

/** Where in-memory requests (app.request('/path')) arrive: hono gives them the URL http://localhost/path. */
export const IN_MEMORY_AUDIENCE = 'http://localhost';

/** Signs a challenge the way the agent does: tweetnacl, domain-separated, for the controller at `audience`. */
export function signChallenge(host: TestHost, nonce: string, audience: string = IN_MEMORY_AUDIENCE): string {
  return toBase64(nacl.sign.detached(challengeMessage(host.name, nonce, audience), host.keys.secretKey));
}

export async function postJson(ctl: TestController, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return ctl.app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

export async function sessionFor(ctl: TestController, host: TestHost): Promise<string> {
  const challenge = await postJson(ctl, '/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: host.name });
  expect(challenge.status).toBe(200);
  const { nonce } = (await challenge.json()) as { nonce: string };
  const session = await postJson(ctl, '/v1/agent/session', {
    protocol: PROTOCOL_VERSION,
    host: host.name,
    nonce,
    signature: signChallenge(host, nonce),
  });
  expect(session.status).toBe(200);
  return ((await session.json()) as { token: string }).token;
}

export async function count(ctl: { store: Store }, table: string): Promise<number> {
  const [row] = await ctl.store.rows<{ n: number }>(sql`select count(*) as n from ${sql.identifier(table)}`);
  return row!.n;
}

/** Row counts of every table, to prove that a refused request wrote nothing. */
export async function snapshot(ctl: TestController): Promise<Record<string, number>> {
  const tables = ['hosts', 'manifests', 'reports', 'events', 'enrollment_tokens', 'operator_tokens'];
  return Object.fromEntries(await Promise.all(tables.map(async (t) => [t, await count(ctl, t)] as const)));
}

/** The host's desired manifest (what the controller serves it), read through the store. */
export async function desiredManifest(store: Store, host: string): Promise<ManifestRow | undefined> {
  const { hosts, manifests } = store.t;
  const [row] = await store.q
    .select({ manifest: manifests })
    .from(hosts)
    .innerJoin(manifests, and(eq(manifests.host, hosts.name), eq(manifests.version, hosts.desiredVersion)))
    .where(eq(hosts.name, host))
    .limit(1);
  return row?.manifest;
}

/** Event rows of the given kind(s), of one host and rollout if given, in order, `data` parsed on both engines. */
export async function eventsOf(store: Store, kind: string | string[], where: { host?: string; rolloutId?: string } = {}): Promise<EventRow[]> {
  const { events } = store.t;
  return store.q
    .select()
    .from(events)
    .where(
      and(
        typeof kind === 'string' ? eq(events.kind, kind) : inArray(events.kind, kind),
        where.host === undefined ? undefined : eq(events.host, where.host),
        where.rolloutId === undefined ? undefined : eq(events.rolloutId, where.rolloutId),
      ),
    )
    .orderBy(asc(events.id));
}

/** Inserts host rows directly (no keys made, no events): fleets of thousands for scale tests. */
export async function seedHosts(store: Store, hosts: Array<{ name: string; publicKey?: string }>): Promise<void> {
  await store.transaction(async (tx) => {
    // Chunks keep each statement below the engines' bound-parameter limits.
    for (let at = 0; at < hosts.length; at += 1000) {
      await tx.insert(store.t.hosts).values(hosts.slice(at, at + 1000).map(({ name, publicKey = 'AAAA' }) => ({ name, publicKey })));
    }
  });
}

/** Runs one SQL statement that returns no rows (seeding, or a state no API reaches) as a transaction of the store. */
export async function execute(store: Store, statement: SQL): Promise<void> {
  await store.transaction(async (tx) => {
    // drizzle names it run() on SQLite, execute() on PostgreSQL; the store's types are PostgreSQL's.
    if (store.engine === 'sqlite') await (tx as unknown as { run(query: SQL): Promise<unknown> }).run(statement);
    else await tx.execute(statement);
  });
}

/** What `shoal release sign` makes: a bundle of statements signed by `key` (CI's release key), at a fixed time and revision. */
export function signedBundle(
  key: NamedSecretKey,
  name: string,
  hosts: Array<{ host: string; storePath: string; facts?: ReleaseBuildHost['facts'] }>,
  options: { floor?: number; source?: ReleaseSource; createdAt?: string } = {},
): ReleaseBundle {
  return signBuild(key, name, hosts, {
    floor: options.floor ?? 0,
    source: options.source ?? { revision: 'deadbeef', flakeLockHash: null },
    createdAt: options.createdAt ?? '2030-01-02T03:04:05.000Z',
  });
}
