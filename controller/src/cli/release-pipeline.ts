import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { KeyFormatError, parseSecretKey, type NamedSecretKey } from '../../../shared/src/keys.js';
import { ReleaseBuild, ReleaseBundle, signReleaseBundle } from '../../../shared/src/release-statement.js';
import { ReleaseName, RolloutRoutes } from '../../../shared/src/rollout-api.js';
import type { OperatorClient } from './client.js';
import { buildRelease, type BuildReleaseOptions } from './release-build.js';
import { CliError } from './context.js';
import { NixError, nixErrorText, runNix } from './nix.js';

/**
 * The steps after `release build`, as functions a test or another program can call: copy the
 * closures into the binary cache, sign the statements offline, publish the bundle.
 */

const COPY_BATCH = 500;

/** `?secret-key=FILE` makes Nix sign every narinfo it uploads with the cache's key: Nix's signing, not ours. */
export function cacheUrlWithKey(url: string, cacheKeyFile: string | undefined): string {
  if (!cacheKeyFile) return url;
  const file = resolve(cacheKeyFile);
  if (!existsSync(file)) throw new CliError(`cache key ${cacheKeyFile}: no such file`, 2);
  if (/[?&#%\s]/.test(file)) throw new CliError(`cache key path ${JSON.stringify(file)} cannot go into a store URL (it holds ?, &, #, % or a space)`, 2);
  if (/[?&]secret-key=/.test(url)) throw new CliError('the cache URL already has secret-key=; give the key either there or with --cache-key', 2);
  return `${url}${url.includes('?') ? '&' : '?'}secret-key=${file}`;
}

export interface PushOptions {
  storePaths: readonly string[];
  to: string;
  cacheKeyFile?: string | undefined;
  env: Record<string, string | undefined>;
  progress: (line: string) => void;
}

/** `nix copy --to` of every system's closure; paths the cache already has are skipped by Nix. */
export async function pushClosures(options: PushOptions): Promise<void> {
  const url = cacheUrlWithKey(options.to, options.cacheKeyFile);
  const paths = [...new Set(options.storePaths)];
  const signing = options.cacheKeyFile ? `signed with ${resolve(options.cacheKeyFile)}` : /[?&]secret-key=/.test(url) ? 'signed with the URL’s secret-key' : 'not signed here: the cache must sign them itself';
  options.progress(`copying the closures of ${paths.length} system${paths.length === 1 ? '' : 's'} to ${options.to} (${signing})`);
  for (let i = 0; i < paths.length; i += COPY_BATCH) {
    const batch = paths.slice(i, i + COPY_BATCH);
    try {
      await runNix(['copy', '--to', url, ...batch], { env: options.env });
    } catch (error) {
      if (error instanceof NixError) throw new CliError(`nix copy to ${options.to} failed:`, 1, nixErrorText(error).split('\n'));
      throw error;
    }
    options.progress(`copied ${Math.min(i + COPY_BATCH, paths.length)} of ${paths.length} closures`);
  }
}

function readJson(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(code ? `cannot read ${what} ${file}: ${code}` : `${what} ${file} is not valid JSON: ${(error as Error).message}`);
  }
}

function parseFile<S extends z.ZodType>(file: string, schema: S, what: string): z.output<S> {
  const parsed = schema.safeParse(readJson(file, what));
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.slice(0, 10).map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  throw new CliError(`${what} ${file} is not valid:`, 1, problems);
}

export const readReleaseBuild = (file: string): ReleaseBuild => parseFile(file, ReleaseBuild, 'release build');
export const readReleaseBundle = (file: string): ReleaseBundle => parseFile(file, ReleaseBundle, 'release bundle');

/** The store paths of a release build or bundle: push-closures takes either. */
export function readReleasePaths(file: string): string[] {
  const parsed = z.union([ReleaseBuild, ReleaseBundle]).safeParse(readJson(file, 'release file'));
  if (!parsed.success) throw new CliError(`release file ${file} is neither the output of shoal release build nor of shoal release sign`);
  return parsed.data.hosts.map((h) => h.storePath);
}

/** The CI key, as `shoal keygen` writes it; refused when anyone but its owner can read it. */
export function readReleaseKey(file: string): NamedSecretKey {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (error) {
    throw new CliError(`cannot read release key ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    const shown = (mode & 0o777).toString(8).padStart(4, '0');
    throw new CliError(`release key ${file} is readable by group or others (mode ${shown}); refusing to use it. Run: chmod 600 ${file}`);
  }
  try {
    return parseSecretKey(readFileSync(file, 'utf8'));
  } catch (error) {
    if (error instanceof KeyFormatError) throw new CliError(`release key ${file}: ${error.message} (make one with shoal keygen)`);
    throw error;
  }
}

export interface Signed {
  bundle: ReleaseBundle;
  keyId: string;
  signingMs: number;
}

/** Signs every host's statement; no network, no clock but the one the build recorded. */
export function signRelease(build: ReleaseBuild, key: NamedSecretKey, floor: number): Signed {
  const started = performance.now();
  const bundle = signReleaseBundle(build, key, floor);
  return { bundle, keyId: key.keyId, signingMs: performance.now() - started };
}

/** What the controller answers; only what the CLI prints is required, the rest is the controller's to extend. */
export const PublishedRelease = z.looseObject({ name: ReleaseName, hosts: z.array(z.unknown()) });
export type PublishedRelease = z.infer<typeof PublishedRelease>;

/** POST /v1/releases with the bundle; the controller verifies every statement before storing it. */
export function publishBundle(client: OperatorClient, bundle: ReleaseBundle): Promise<PublishedRelease> {
  return client.call('POST', RolloutRoutes.releases, PublishedRelease, bundle);
}

export interface PipelineOptions {
  build: BuildReleaseOptions;
  cache: string;
  cacheKeyFile?: string | undefined;
  key: NamedSecretKey;
  floor: number;
  client: OperatorClient;
  /** Told the bundle before it is published, e.g. to keep it as a CI artefact. */
  bundleOut?: (bundle: ReleaseBundle) => void;
}

/** `shoal release publish --flake …`: build → push closures → sign → publish, with progress. */
export async function publishFromSource(options: PipelineOptions): Promise<Signed & { build: ReleaseBuild; release: PublishedRelease; seconds: number }> {
  const { progress, env } = options.build;
  const step = (n: number, what: string) => progress(`[${n}/4] ${what}`);
  const started = performance.now();
  step(1, `build ${options.build.source.display}`);
  const build = await buildRelease(options.build);
  step(2, `push closures to ${options.cache}`);
  await pushClosures({ storePaths: build.hosts.map((h) => h.storePath), to: options.cache, cacheKeyFile: options.cacheKeyFile, env, progress });
  step(3, 'sign');
  const signed = signRelease(build, options.key, options.floor);
  progress(`signed ${signed.bundle.hosts.length} statements with key ${signed.keyId} (floor ${options.floor}) in ${signed.signingMs.toFixed(0)} ms`);
  options.bundleOut?.(signed.bundle);
  step(4, `publish to ${options.client.baseUrl}`);
  const release = await publishBundle(options.client, signed.bundle);
  const seconds = (performance.now() - started) / 1000;
  progress(`published release ${release.name} in ${seconds.toFixed(1)} s`);
  return { ...signed, build, release, seconds };
}
