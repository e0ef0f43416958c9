import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { HostName, StorePath } from '../../../shared/src/protocol.js';
import { storePathProblem } from '../../../shared/src/store-path.js';
import { CreateReleaseRequest, Release, ReleaseName, RolloutRoutes } from '../../../shared/src/rollout-api.js';
import { json, str } from './args.js';
import type { Parsed } from './command-spec.js';
import { OperatorClient } from './client.js';
import { CliError, type CliIo } from './context.js';
import { releaseLines, releaseListTable } from './release-format.js';

/** GET /v1/releases answers summaries: the host count instead of the host list. */
export const ReleaseSummaries = z.object({ releases: z.array(Release.omit({ hosts: true }).extend({ hosts: z.number().int() })) });
export type ReleaseSummaries = z.infer<typeof ReleaseSummaries>;

type Entry = { host: string; storePath: string };

/** A release file is {"hosts": {"web-1": "/nix/store/…"}}, the API's list form {"hosts": [{host, storePath}]}, or that list alone. */
function readReleaseFile(file: string): { entries: unknown[]; description?: unknown; source?: unknown } {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(code ? `cannot read release file ${file}: ${code}` : `release file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(raw)) return { entries: raw };
  if (raw === null || typeof raw !== 'object' || !('hosts' in raw)) {
    throw new CliError(`release file ${file} must be {"hosts": {"HOST": "/nix/store/…"}} or {"hosts": [{"host": …, "storePath": …}]}`);
  }
  const { hosts, description, source } = raw as { hosts: unknown; description?: unknown; source?: unknown };
  const entries = Array.isArray(hosts)
    ? hosts
    : hosts !== null && typeof hosts === 'object'
      ? Object.entries(hosts).map(([host, storePath]) => ({ host, storePath }))
      : null;
  if (!entries) throw new CliError(`release file ${file}: "hosts" must be an object or a list`);
  return { entries, description, source };
}

function fromArguments(pairs: string[]): unknown[] {
  return pairs.map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`expected HOST=/nix/store/…, got ${JSON.stringify(pair)}`, 2);
    return { host: pair.slice(0, eq), storePath: pair.slice(eq + 1) };
  });
}

/** Checks every entry here, so each offender is named by host rather than by list index. */
function validEntries(entries: unknown[]): Entry[] {
  const problems: string[] = [];
  const valid: Entry[] = [];
  entries.forEach((entry, i) => {
    const { host, storePath } = (entry ?? {}) as { host?: unknown; storePath?: unknown };
    const who = typeof host === 'string' ? `host "${host}"` : `entry ${i + 1}`;
    const hostOk = HostName.safeParse(host);
    const pathOk = StorePath.safeParse(storePath);
    if (!hostOk.success) problems.push(`${who}: not a valid host name`);
    if (!pathOk.success) {
      const why = typeof storePath === 'string' ? ` (${storePathProblem(storePath)})` : '';
      problems.push(`${who}: ${JSON.stringify(storePath ?? null)} is not a Nix store path${why}`);
    }
    if (hostOk.success && pathOk.success) valid.push({ host: hostOk.data, storePath: pathOk.data });
  });
  if (problems.length > 0) throw new CliError(`release refused: ${problems.length} bad host entr${problems.length === 1 ? 'y' : 'ies'}`, 1, problems);
  return valid;
}

export async function releaseCreate({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const [name, ...pairs] = positionals as [string, ...string[]];
  if (!ReleaseName.safeParse(name).success) throw new CliError(`release name ${JSON.stringify(name)} must be letters, digits, ".", "_" or "-", at most 100 characters`, 2);
  const file = str(values.file);
  if (file && pairs.length > 0) throw new CliError('give the hosts either with --file or as HOST=PATH arguments, not both', 2);
  if (!file && pairs.length === 0) throw new CliError('release create needs --file FILE or HOST=/nix/store/… arguments', 2);
  const fromFile = file ? readReleaseFile(file) : null;
  const hosts = validEntries(fromFile ? fromFile.entries : fromArguments(pairs));
  const description = str(values.description) ?? (typeof fromFile?.description === 'string' ? fromFile.description : '');
  const source = str(values.source) ?? (typeof fromFile?.source === 'string' ? fromFile.source : null);
  const request: CreateReleaseRequest = { name, description, source, hosts };
  const release = await OperatorClient.from(values, io).call('POST', RolloutRoutes.releases, Release, request);
  if (values.json) json(io, release);
  else io.stdout(`created release ${release.name} (${release.hosts.length} host${release.hosts.length === 1 ? '' : 's'})\n`);
}

export async function releaseList({ values }: Parsed, io: CliIo): Promise<void> {
  const list = await OperatorClient.from(values, io).call('GET', RolloutRoutes.releases, ReleaseSummaries);
  if (values.json) json(io, list);
  else io.stdout(releaseListTable(list.releases));
}

export async function releaseShow({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const release = await OperatorClient.from(values, io).call('GET', RolloutRoutes.release(positionals[0]!), Release);
  if (values.json) json(io, release);
  else io.stdout(releaseLines(release));
}
