import Database from 'better-sqlite3';
import { closeSync, createWriteStream, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  EnrollmentTokenList,
  HostRemoved,
  HostStatus,
  OperatorRoutes,
  TokenRevoked,
  UnknownHostList,
} from '../../../shared/src/operator-api.js';
import { json, str } from './args.js';
import type { Parsed } from './command-spec.js';
import { OperatorClient } from './client.js';
import { CliError, type CliIo } from './context.js';

/** Host and token lifecycle over the operator API: remove, re-key, adopt, list and revoke, back up. */

export async function hostRemove({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const name = positionals[0]!;
  const removed = await OperatorClient.from(values, io).call('DELETE', OperatorRoutes.host(name), HostRemoved);
  if (values.json) json(io, removed);
  else io.stdout(`removed ${removed.removed} (its manifests, reports and history are gone; its agent can no longer log in)\n`);
}

/** `shoal host pause|resume NAME`: hold a host back from rollouts and `set`, or let it go again. */
export function hostPause(paused: boolean) {
  return async ({ values, positionals }: Parsed, io: CliIo): Promise<void> => {
    const name = positionals[0]!;
    const status = await OperatorClient.from(values, io).call('POST', paused ? OperatorRoutes.pause(name) : OperatorRoutes.resume(name), HostStatus);
    if (values.json) json(io, status);
    else if (paused) io.stdout(`paused ${status.name}: rollouts leave it waiting in its wave and \`shoal set\` needs --force until \`shoal host resume ${status.name}\`\n`);
    else io.stdout(`resumed ${status.name}: rollouts waiting for it issue it its manifest now\n`);
  };
}

export async function hostRekey({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const publicKey = str(values['public-key'])!;
  const name = positionals[0]!;
  const status = await OperatorClient.from(values, io).call('POST', OperatorRoutes.rekey(name), HostStatus, { publicKey });
  if (values.json) json(io, status);
  else io.stdout(`re-keyed ${status.name}; the old key no longer logs in\n`);
}

export async function hostUnknown({ values }: Parsed, io: CliIo): Promise<void> {
  const list = await OperatorClient.from(values, io).call('GET', OperatorRoutes.unknownHosts, UnknownHostList);
  if (values.json) return json(io, list);
  if (list.hosts.length === 0) return io.stdout('no unknown host has tried to connect\n');
  io.stdout('unknown hosts trying to connect (adopt one with: shoal host adopt NAME [--fingerprint FP]):\n');
  for (const host of list.hosts) {
    const version = host.highestVersion === null ? '' : `  accepted up to v${host.highestVersion} (floor ${host.highestFloor ?? 0})`;
    io.stdout(`  ${host.name.padEnd(20)}  ${host.fingerprint}  ${host.attempts} attempt(s), last ${host.lastSeenAt}${version}\n`);
  }
}

export async function hostAdopt({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const name = positionals[0]!;
  const fingerprint = str(values.fingerprint);
  const body = { ...(fingerprint ? { fingerprint } : {}), tags: (values.tag as string[] | undefined) ?? [] };
  const status = await OperatorClient.from(values, io).call('POST', OperatorRoutes.adopt(name), HostStatus, body);
  if (values.json) json(io, status);
  else io.stdout(`adopted ${status.name}; it is a known host again and logs in with the key it presented\n`);
}

export async function enrollTokenList({ values }: Parsed, io: CliIo): Promise<void> {
  const list = await OperatorClient.from(values, io).call('GET', OperatorRoutes.enrollmentTokens, EnrollmentTokenList);
  if (values.json) return json(io, list);
  for (const t of list.tokens) {
    const uses = `${t.uses}/${t.maxUses ?? '∞'} uses`;
    io.stdout(`${t.id}  ${t.state.padEnd(8)}  ${uses.padEnd(12)}  expires ${t.expiresAt}${t.tags.length ? `  tags ${t.tags.join(',')}` : ''}\n`);
  }
}

export async function enrollTokenRevoke({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const revoked = await OperatorClient.from(values, io).call('DELETE', OperatorRoutes.enrollmentToken(positionals[0]!), TokenRevoked);
  if (values.json) json(io, revoked);
  else io.stdout(`revoked ${revoked.id} (hosts already enrolled with it stay enrolled)\n`);
}

/**
 * Downloads a consistent copy of the controller's database (GET /v1/backup, admin) to FILE: written
 * to FILE.partial (mode 0600: it holds webhook secrets), checked by SQLite's integrity check, then
 * renamed, so FILE is only ever a whole, readable backup.
 */
export async function backup({ values }: Parsed, io: CliIo): Promise<void> {
  const out = str(values.out)!;
  const partial = `${out}.partial`;
  try {
    closeSync(openSync(out, 'wx', 0o600));
    rmSync(out);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new CliError(`${out} already exists; refusing to overwrite a backup`);
    throw new CliError(`cannot write ${out}: ${code ?? (error as Error).message}`);
  }
  const response = await OperatorClient.from(values, io).stream(OperatorRoutes.backup, { accept: 'application/vnd.sqlite3' }, AbortSignal.timeout(3600_000));
  try {
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), createWriteStream(partial, { mode: 0o600, flags: 'w' }));
    const check = checkBackup(partial);
    renameSync(partial, out);
    const bytes = statSync(out).size;
    if (values.json) json(io, { file: out, bytes, hosts: check.hosts });
    else io.stdout(`backup written to ${out} (${bytes} bytes, ${check.hosts} hosts, integrity ok)\n`);
  } catch (error) {
    rmSync(partial, { force: true });
    if (error instanceof CliError) throw error;
    throw new CliError(`backup failed: ${(error as Error).message}`);
  }
}

function checkBackup(file: string): { hosts: number } {
  let database: Database.Database;
  try {
    database = new Database(file, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new CliError(`the downloaded backup is not a SQLite database: ${(error as Error).message}`);
  }
  try {
    const integrity = database.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') throw new CliError(`the downloaded backup failed SQLite's integrity check: ${String(integrity)}`);
    return { hosts: (database.prepare('select count(*) as n from hosts').get() as { n: number }).n };
  } finally {
    database.close();
  }
}
