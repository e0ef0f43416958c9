import { writeFileSync } from 'node:fs';
import { ReleaseName } from '../../../shared/src/rollout-api.js';
import type { ReleaseBundle } from '../../../shared/src/release-statement.js';
import { integer, json, str } from './args.js';
import type { Parsed, Values } from './command-spec.js';
import { OperatorClient } from './client.js';
import { CliError, type CliIo } from './context.js';
import { buildRelease, type BuildReleaseOptions } from './release-build.js';
import {
  cacheUrlWithKey,
  publishBundle,
  publishFromSource,
  pushClosures,
  readReleaseBuild,
  readReleaseBundle,
  readReleaseKey,
  readReleasePaths,
  signRelease,
  type PublishedRelease,
} from './release-pipeline.js';
import { fileSource, flakeSource, type SystemsSource } from './release-source.js';

/** `shoal release build|push-closures|sign|publish`: CI's path from a flake to a published, signed release. */

function sourceFrom(values: Values): SystemsSource {
  const flake = str(values.flake);
  const file = str(values.file);
  if (flake !== undefined && file !== undefined) throw new CliError('give either --flake or --file, not both', 2);
  if (file !== undefined) return fileSource(file);
  return flakeSource(flake ?? '.');
}

function releaseName(values: Values): string {
  const name = str(values.name);
  if (name === undefined) throw new CliError('needs --name NAME (the release name, e.g. the CI run or the git tag)', 2);
  if (!ReleaseName.safeParse(name).success) throw new CliError(`release name ${JSON.stringify(name)} must be letters, digits, ".", "_" or "-", at most 100 characters`, 2);
  return name;
}

function floorFrom(values: Values): number {
  return integer(str(values.floor) ?? '0', '--floor', 0);
}

function writeJsonFile(file: string, value: unknown, io: CliIo): void {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  if (file === '-') return io.stdout(text);
  try {
    writeFileSync(file, text);
  } catch (error) {
    throw new CliError(`cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

const progressTo = (io: CliIo) => (line: string) => io.stderr(`${line}\n`);

function buildOptions(values: Values, io: CliIo): BuildReleaseOptions {
  const description = str(values.description);
  const revision = str(values.revision);
  return {
    source: sourceFrom(values),
    name: releaseName(values),
    ...(description !== undefined ? { description } : {}),
    ...(revision !== undefined ? { revision } : {}),
    env: io.env,
    progress: progressTo(io),
  };
}

export async function releaseBuild({ values }: Parsed, io: CliIo): Promise<void> {
  const out = str(values.out)!;
  const built = await buildRelease(buildOptions(values, io));
  writeJsonFile(out, built, io);
  if (out !== '-') io.stderr(`wrote ${out}: release ${built.name}, ${built.hosts.length} host${built.hosts.length === 1 ? '' : 's'}, revision ${built.source.revision ?? '(none: not a clean git tree)'}\n`);
}

export async function releasePushClosures({ values }: Parsed, io: CliIo): Promise<void> {
  const to = str(values.to)!;
  const storePaths = readReleasePaths(str(values.release)!);
  await pushClosures({ storePaths, to, cacheKeyFile: str(values['cache-key']), env: io.env, progress: progressTo(io) });
  if (values.json) json(io, { to, storePaths });
}

function signedLine(bundle: ReleaseBundle, keyId: string, ms: number): string {
  return `signed ${bundle.hosts.length} statement${bundle.hosts.length === 1 ? '' : 's'} for release ${bundle.name} with key ${keyId} (floor ${bundle.floor}) in ${ms.toFixed(0)} ms`;
}

export async function releaseSign({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const keyFile = str(values.key)!;
  const floor = floorFrom(values);
  const key = readReleaseKey(keyFile);
  const { bundle, keyId, signingMs } = signRelease(readReleaseBuild(positionals[0]!), key, floor);
  const out = str(values.out)!;
  writeJsonFile(out, bundle, io);
  const line = `${signedLine(bundle, keyId, signingMs)}${out === '-' ? '' : `: ${out}`}\n`;
  (out === '-' ? io.stderr : io.stdout)(line);
}

function publishedLine(release: PublishedRelease, bundle: ReleaseBundle, keyId: string): string {
  return `published release ${release.name} (${release.hosts.length} host${release.hosts.length === 1 ? '' : 's'}, signed by ${keyId}, floor ${bundle.floor})\n`;
}

function bundleKeyId(bundle: ReleaseBundle): string {
  return [...new Set(bundle.hosts.flatMap((h) => h.statement.signatures.map((s) => s.keyid)))].join(', ');
}

/** `publish BUNDLE`, or with --flake/--file the whole pipeline: build → push → sign → publish. */
export async function releasePublish({ values, positionals }: Parsed, io: CliIo): Promise<void> {
  const oneShot = values.flake !== undefined || values.file !== undefined;
  if (oneShot && positionals.length > 0) throw new CliError('give either a bundle file or --flake/--file to build one, not both', 2);
  if (!oneShot && positionals.length === 0) throw new CliError('release publish needs BUNDLE.json (from shoal release sign), or --flake … --cache … --key … --name … to build, push and sign first', 2);
  const client = OperatorClient.from(values, io);
  if (!oneShot) {
    const bundle = readReleaseBundle(positionals[0]!);
    const release = await publishBundle(client, bundle);
    if (values.json) json(io, release);
    else io.stdout(publishedLine(release, bundle, bundleKeyId(bundle)));
    return;
  }
  const cache = str(values.cache);
  const keyFile = str(values.key);
  if (!cache) throw new CliError('release publish --flake needs --cache CACHE_URL (where hosts download the systems)', 2);
  if (!keyFile) throw new CliError('release publish --flake needs --key FILE (the CI release key)', 2);
  // Everything that can be refused without Nix is checked before a long build.
  const key = readReleaseKey(keyFile);
  const floor = floorFrom(values);
  const build = buildOptions(values, io);
  cacheUrlWithKey(cache, str(values['cache-key']));
  const { bundle, release, keyId } = await publishFromSource({
    build,
    cache,
    cacheKeyFile: str(values['cache-key']),
    key,
    floor,
    client,
    ...(str(values['bundle-out']) ? { bundleOut: (bundle: ReleaseBundle) => writeJsonFile(str(values['bundle-out'])!, bundle, io) } : {}),
  });
  if (values.json) json(io, release);
  else io.stdout(publishedLine(release, bundle, keyId));
}
