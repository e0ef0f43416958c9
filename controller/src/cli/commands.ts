import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatPublicKey, formatSecretKey, generateNamedKey, KeyFormatError, parseSecretKey } from '../../../shared/src/keys.js';
import {
  EnrollmentTokenCreated,
  HostEvents,
  HostList,
  HostStatus,
  ManifestSummary,
  OperatorRoutes,
  OperatorScope,
  OperatorTokenCreated,
  OperatorTokenList,
  TokenRevoked,
  type HostEvent,
} from '../../../shared/src/operator-api.js';
import { Action } from '../../../shared/src/protocol.js';
import { iso, systemClock } from '../clock.js';
import type { Store } from '../db/store.js';
import { OperatorClient } from './client.js';
import { json, list as list_, str } from './args.js';
import type { Parsed } from './command-spec.js';
import { hostCondition } from '../../../shared/src/host-condition.js';
import { CliError, type CliIo } from './context.js';
import { parseDurationSeconds } from './durations.js';
import { paint } from './colour.js';
import { generation, statusTable } from './format.js';
import { historyLines } from './history-format.js';
import { localTime } from './time.js';
import { HostDiff } from '../../../shared/src/closure-api.js';
import { hostDiffLines } from './diff-format.js';

/** What a host runs against what it should run (or --target), read by the controller from the binary cache. */
export async function hostDiff({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const target = str(values.target);
  const query = target ? `?target=${encodeURIComponent(target)}` : '';
  const diff = await OperatorClient.from(values, io).call('GET', `${OperatorRoutes.diff(positionals[0]!)}${query}`, HostDiff);
  if (values.json) json(io, diff);
  else io.stdout(hostDiffLines(diff, paint(io)));
}

export async function keygen({ values }: Parsed, io: CliIo): Promise<void> {
  const name = str(values.name)!;
  const out = str(values.out)!;
  let key;
  try {
    key = generateNamedKey(name);
  } catch (error) {
    if (error instanceof KeyFormatError) throw new CliError(error.message);
    throw error;
  }
  try {
    writeFileSync(out, `${formatSecretKey(key)}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`${out} already exists; refusing to overwrite a key`);
    throw new CliError(`cannot write ${out}: ${code ?? (error as Error).message}`);
  }
  const publicKey = formatPublicKey(key);
  if (values.json) json(io, { keyId: name, publicKey, secretKeyFile: resolve(out) });
  else io.stdout(`${publicKey}\n`);
}

/**
 * Prints the public half of a key again: a named signing key from `shoal keygen` ("NAME:BASE64"),
 * or an agent's host key (bare base64, printed as the `host register --public-key` value).
 */
export async function keyShow({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const file = positionals[0]!;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new CliError(`cannot read key file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let shown: { keyId: string | null; publicKey: string };
  if (text.includes(':')) {
    try {
      const key = parseSecretKey(text);
      shown = { keyId: key.keyId, publicKey: formatPublicKey(key) };
    } catch (error) {
      if (error instanceof KeyFormatError) throw new CliError(`${file}: ${error.message}`);
      throw error;
    }
  } else {
    const raw = Buffer.from(text, 'base64');
    if (raw.length !== 64 || raw.toString('base64') !== text) throw new CliError(`${file} holds neither a shoal key ("NAME:BASE64") nor an agent host key (base64 of 64 bytes)`);
    shown = { keyId: null, publicKey: raw.subarray(32).toString('base64') };
  }
  if (values.json) json(io, shown);
  else io.stdout(`${shown.publicKey}\n`);
}

type OperatorTokens = typeof import('../auth/operator-tokens.js');

/**
 * Operator tokens are managed on the controller machine itself, by opening its database. The
 * database code (drizzle, pg, better-sqlite3) is imported here, not at start: loading it took about
 * a third of every other command's start-up (~0.3 s of ~1 s).
 */
async function withLocalDatabase<T>(command: string, values: Record<string, unknown>, use: (store: Store, tokens: OperatorTokens) => Promise<T>): Promise<T> {
  const [{ openStore }, { describeDatabase, hasScheme }, tokens] = await Promise.all([
    import('../db/store.js'),
    import('../database-setting.js'),
    import('../auth/operator-tokens.js'),
  ]);
  const stateDir = str(values['state-dir']);
  const dbFile = str(values.db) ?? (stateDir ? join(stateDir, 'controller.sqlite') : undefined);
  if (!dbFile) throw new CliError(`${command} needs --state-dir DIR (or --db FILE) of the controller`);
  if (hasScheme(dbFile)) {
    throw new CliError(
      `${command} --db: opening the controller's database directly is for its SQLite file only, not ${describeDatabase({ kind: 'postgres', url: dbFile })}; with PostgreSQL, leave out --db and --state-dir to ${command} over the API (admin token)`,
    );
  }
  if (!existsSync(dbFile)) throw new CliError(`no controller database at ${dbFile}; has the controller been started with that state dir?`);
  let store;
  try {
    store = await openStore({ database: dbFile });
  } catch (error) {
    throw new CliError(`cannot open the controller database ${dbFile}: ${(error as Error).message}`);
  }
  try {
    return await use(store, tokens);
  } finally {
    await store.close();
  }
}

/** Token commands open the database when given --state-dir/--db (the first token, on the controller machine), else use the API (admin). */
const isLocal = (values: Record<string, unknown>) => str(values['state-dir']) !== undefined || str(values.db) !== undefined;

export async function tokenCreate({ values }: Parsed, io: CliIo): Promise<void> {
  const scope = OperatorScope.safeParse(str(values.scope));
  if (!scope.success) throw new CliError(`--scope must be one of ${OperatorScope.options.join(', ')}, got ${JSON.stringify(str(values.scope))}`, 2);
  const name = str(values.name) ?? 'operator';
  const created = isLocal(values)
    ? await withLocalDatabase('token create', values, (store, tokens) => tokens.createOperatorToken(store, systemClock, name, scope.data))
    : await OperatorClient.from(values, io).call('POST', OperatorRoutes.operatorTokens, OperatorTokenCreated, { name, scope: scope.data });
  if (values.json) json(io, created);
  else io.stdout(`${created.token}\n`);
}

export async function tokenList({ values }: Parsed, io: CliIo): Promise<void> {
  const tokens = isLocal(values)
    ? (await withLocalDatabase('token list', values, (store, tokens) => tokens.listOperatorTokens(store))).map((t) => ({
        id: t.id,
        name: t.name,
        scope: t.scope,
        createdAt: iso(t.createdAt),
        revokedAt: t.revokedAt === null ? null : iso(t.revokedAt),
      }))
    : (await OperatorClient.from(values, io).call('GET', OperatorRoutes.operatorTokens, OperatorTokenList)).tokens;
  if (values.json) json(io, { tokens });
  else for (const t of tokens) io.stdout(`${t.id}  ${t.name.padEnd(20)}  ${t.scope.padEnd(6)}  created ${localTime(t.createdAt)}${t.revokedAt ? `  revoked ${localTime(t.revokedAt)}` : ''}\n`);
}

export async function tokenRevoke({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const id = positionals[0]!;
  if (isLocal(values)) {
    const revoked = await withLocalDatabase('token revoke', values, (store, tokens) => tokens.revokeOperatorToken(store, systemClock, id));
    if (!revoked) throw new CliError(`no active operator token with id ${JSON.stringify(id)}; see shoal token list`);
  } else {
    await OperatorClient.from(values, io).call('DELETE', OperatorRoutes.operatorToken(id), TokenRevoked);
  }
  if (values.json) json(io, { id, revoked: true });
  else io.stdout(`revoked ${id}\n`);
}

export async function enrollTokenCreate({ values }: Parsed, io: CliIo): Promise<void> {
  const maxUsesText = str(values['max-uses']);
  const maxUses = maxUsesText === undefined ? null : Number(maxUsesText);
  if (maxUses !== null && (!Number.isInteger(maxUses) || maxUses <= 0)) throw new CliError(`--max-uses must be a positive integer, got ${JSON.stringify(maxUsesText)}`);
  const body = { ttlSeconds: parseDurationSeconds(str(values.ttl) ?? '1h', '--ttl'), maxUses, tags: (values.tag as string[] | undefined) ?? [] };
  const created = await OperatorClient.from(values, io).call('POST', '/v1/enrollment-tokens', EnrollmentTokenCreated, body);
  if (values.json) json(io, created);
  else io.stdout(`${created.token}\n`);
}

export async function hostRegister({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const publicKey = str(values['public-key'])!;
  const name = positionals[0]!;
  const status = await OperatorClient.from(values, io).call('POST', '/v1/hosts', HostStatus, { name, publicKey, tags: (values.tag as string[] | undefined) ?? [] });
  if (values.json) json(io, status);
  else io.stdout(`registered ${status.name}\n`);
}

export async function setDesired({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const action = Action.safeParse(values.action);
  if (!action.success) throw new CliError(`--action must be one of ${Action.options.join(', ')}, got ${JSON.stringify(values.action)}`);
  const [host, storePath] = positionals as [string, string];
  const summary = await OperatorClient.from(values, io).call('PUT', `/v1/hosts/${encodeURIComponent(host)}/desired`, ManifestSummary, {
    storePath,
    action: action.data,
    force: values.force === true,
  });
  if (values.json) json(io, summary);
  else io.stdout(`${host}: generation ${generation(summary.version)} ${summary.storePath} (${summary.action}), expires ${localTime(summary.expiresAt)}\n`);
}

export async function status({ values }: Parsed, io: CliIo): Promise<void> {
  const list = await OperatorClient.from(values, io).call('GET', '/v1/hosts', HostList);
  const tags = list_(values.tag);
  const rollout = str(values.rollout);
  const hosts = list.hosts.filter(
    (host) =>
      (!values.failed || hostCondition(host) === 'failed') &&
      (tags.length === 0 || tags.some((tag) => host.tags.includes(tag))) &&
      (rollout === undefined || host.desired?.rolloutId === rollout),
  );
  const filter = [values.failed ? 'failed' : '', tags.length > 0 ? `tag ${tags.join(' or ')}` : '', rollout ? `rollout ${rollout}` : ''].filter(Boolean).join(', ');
  if (values.json) json(io, { hosts });
  else io.stdout(statusTable(hosts, { now: Date.now(), paint: paint(io), wide: values.wide === true, fleet: list.hosts, ...(filter ? { filter } : {}) }));
}

export async function history({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit <= 0) throw new CliError(`--limit must be a positive integer, got ${JSON.stringify(values.limit)}`);
  const host = positionals[0]!;
  const client = OperatorClient.from(values, io);
  // The API pages forward from an id; walk to the end and keep the newest `limit`.
  let events: HostEvent[] = [];
  let afterId = 0;
  for (;;) {
    const page = await client.call('GET', `/v1/hosts/${encodeURIComponent(host)}/events?afterId=${afterId}&limit=1000`, HostEvents);
    events = events.concat(page.events).slice(-limit);
    if (page.events.length < 1000) break;
    afterId = page.events.at(-1)!.id;
  }
  if (values.json) json(io, { events });
  else io.stdout(historyLines(events, paint(io)));
}
