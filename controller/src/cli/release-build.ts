import { existsSync } from 'node:fs';
import { z } from 'zod';
import { isHostName, HOST_NAME_RULE } from '../../../shared/src/names.js';
import { PROTOCOL_VERSION, type ReleaseSource } from '../../../shared/src/protocol.js';
import { ReleaseBuild, type ReleaseBuildHost } from '../../../shared/src/release-statement.js';
import { CliError } from './context.js';
import { NixError, nixErrorText, runNix } from './nix.js';
import { systemFacts } from './release-facts.js';
import { sourceOf, type SystemsSource } from './release-source.js';

export interface BuildReleaseOptions {
  source: SystemsSource;
  name: string;
  description?: string;
  /** Overrides the revision found in git (null: record none). */
  revision?: string | null;
  env: Record<string, string | undefined>;
  progress: (line: string) => void;
  now?: () => Date;
}

interface Evaluated {
  host: string;
  drvPath: string;
  outPath: string;
  /** The installable attribute path below the source, for `nix build`. */
  attrPath: string;
}

// Each value is a NixOS configuration or already a toplevel; anything else is named, not guessed at.
const TOPLEVEL = `name: value:
  if value ? config then value.config.system.build.toplevel
  else if value ? drvPath then value
  else throw "shoal: \${name} is neither a NixOS configuration (config.system.build.toplevel) nor a derivation"`;

const APPLY = `hosts: builtins.mapAttrs (name: value: builtins.trace "shoal-eval \${name}" (
  let top = (${TOPLEVEL}) name value; in { drv = top.drvPath; out = top.outPath; configuration = value ? config; })) hosts`;

// Not drvPath/outPath: Nix prints a set with an outPath as that string.
// One configuration or one derivation where a set of them was meant: say so rather than list its attributes as hosts.
const NAMES = `v:
  if (v ? config && builtins.isAttrs v.config && v.config ? system) || (v.type or null) == "derivation"
  then throw "shoal: this is one system, not a set of host -> system (did you mean the set that holds it, e.g. #nixosConfigurations?)"
  else builtins.attrNames v`;

const Details = z.record(z.string(), z.object({ drv: z.string(), out: z.string(), configuration: z.boolean() }));

/** Hundreds of installables per `nix build`: one evaluation each, and far below the argument-size limit. */
const BUILD_BATCH = 200;

function evalArgs(source: SystemsSource, apply: string): string[] {
  return source.kind === 'flake'
    ? ['eval', '--json', '--no-write-lock-file', `${source.ref}#${source.attr}`, '--apply', apply]
    : ['eval', '--json', '--file', source.file, '--apply', apply];
}

function evalFailure(source: SystemsSource, error: unknown, what: string): never {
  if (error instanceof NixError) throw new CliError(`cannot evaluate ${what} of ${source.display}:`, 1, nixErrorText(error).split('\n'));
  throw error;
}

async function hostNames(source: SystemsSource, env: BuildReleaseOptions['env']): Promise<string[]> {
  let names: unknown;
  try {
    names = JSON.parse(await runNix(evalArgs(source, NAMES), { env }));
  } catch (error) {
    evalFailure(source, error, 'the host list');
  }
  const list = z.array(z.string()).parse(names);
  if (list.length === 0) throw new CliError(`${source.display} has no hosts (an empty attribute set)`);
  const bad = list.filter((name) => !isHostName(name));
  if (bad.length > 0) throw new CliError(`${source.display}: ${bad.length} attribute name(s) are not valid host names (${HOST_NAME_RULE}):`, 1, bad.map((n) => JSON.stringify(n)));
  return list;
}

/** When evaluating all hosts at once failed, evaluate each alone to name the ones that fail. */
async function failingHosts(source: SystemsSource, names: string[], env: BuildReleaseOptions['env']): Promise<string[]> {
  const details: string[] = [];
  for (const name of names) {
    try {
      await runNix(evalArgs(source, `hosts: ((${TOPLEVEL}) "${name}" hosts."${name}").drvPath`), { env });
    } catch (error) {
      if (!(error instanceof NixError)) throw error;
      details.push(`host ${name}:`, ...nixErrorText(error).split('\n').map((l) => `  ${l}`));
    }
  }
  return details;
}

async function evaluate(source: SystemsSource, names: string[], options: BuildReleaseOptions): Promise<Evaluated[]> {
  let seen = 0;
  const onStderrLine = (line: string) => {
    const match = /^trace: shoal-eval (\S+)$/.exec(line);
    if (match) options.progress(`evaluating host ${++seen} of ${names.length}: ${match[1]}`);
  };
  let details: z.infer<typeof Details>;
  try {
    details = Details.parse(JSON.parse(await runNix(evalArgs(source, APPLY), { env: options.env, onStderrLine })));
  } catch (error) {
    if (!(error instanceof NixError)) throw error;
    const perHost = await failingHosts(source, names, options.env);
    if (perHost.length === 0) evalFailure(source, error, 'the hosts');
    throw new CliError(`evaluation failed for ${perHost.filter((l) => l.startsWith('host ')).length} of ${names.length} hosts of ${source.display}:`, 1, perHost);
  }
  return names.map((host) => {
    const d = details[host]!;
    return { host, drvPath: d.drv, outPath: d.out, attrPath: `"${host}"${d.configuration ? '.config.system.build.toplevel' : ''}` };
  });
}

const BuildOutput = z.array(z.object({ drvPath: z.string(), outputs: z.record(z.string(), z.string()) }));

async function build(source: SystemsSource, hosts: Evaluated[], options: BuildReleaseOptions): Promise<void> {
  const byDrv = new Map(hosts.map((h) => [h.drvPath, h.host]));
  const present = hosts.filter((h) => existsSync(h.outPath)).length;
  options.progress(`building ${hosts.length} system${hosts.length === 1 ? '' : 's'} with nix build (${present} already in the store)`);
  let started = 0;
  const onStderrLine = (line: string) => {
    const match = /building '(\/nix\/store\/[^']+\.drv)'/.exec(line);
    const host = match ? byDrv.get(match[1]!) : undefined;
    if (host) options.progress(`building host ${++started} of ${hosts.length - present}: ${host}`);
  };
  for (let i = 0; i < hosts.length; i += BUILD_BATCH) {
    const batch = hosts.slice(i, i + BUILD_BATCH);
    const installables =
      source.kind === 'flake' ? batch.map((h) => `${source.ref}#${source.attr}.${h.attrPath}`) : ['--file', source.file, ...batch.map((h) => h.attrPath)];
    let out: string;
    try {
      // --keep-going: a failing host must not hide which other hosts build fine.
      out = await runNix(['build', '--no-link', '--json', '--keep-going', '--no-write-lock-file', ...installables], { env: options.env, onStderrLine });
    } catch (error) {
      if (!(error instanceof NixError)) throw error;
      const failed = batch.filter((h) => !existsSync(h.outPath)).map((h) => h.host);
      const which = failed.length > 0 ? `host${failed.length === 1 ? '' : 's'} ${failed.join(', ')}` : `hosts ${batch[0]!.host} to ${batch.at(-1)!.host}`;
      throw new CliError(`nix build failed for ${which} (${failed.length || batch.length} of ${hosts.length}):`, 1, nixErrorText(error).split('\n'));
    }
    const results = BuildOutput.parse(JSON.parse(out));
    results.forEach((result, k) => {
      const host = batch[k]!;
      if (result.outputs.out !== host.outPath) throw new Error(`nix build gave ${result.outputs.out} for ${host.host}, evaluation said ${host.outPath}`);
    });
  }
}

/** Evaluates, builds and describes every system of `source`: what `shoal release build` writes. */
export async function buildRelease(options: BuildReleaseOptions): Promise<ReleaseBuild> {
  const { source } = options;
  options.progress(`evaluating ${source.display}`);
  const names = await hostNames(source, options.env);
  const hosts = await evaluate(source, names, options);
  await build(source, hosts, options);
  const facts = await systemFacts(hosts.map((h) => ({ host: h.host, storePath: h.outPath })), options.env, options.progress);
  const found: ReleaseSource = await sourceOf(source, options.env);
  const releaseHosts: ReleaseBuildHost[] = hosts.map((h) => ({ host: h.host, storePath: h.outPath, facts: facts.get(h.host)! }));
  return ReleaseBuild.parse({
    protocol: PROTOCOL_VERSION,
    kind: 'shoal-release-build',
    name: options.name,
    description: options.description ?? '',
    source: { revision: options.revision === undefined ? found.revision : options.revision, flakeLockHash: found.flakeLockHash },
    createdAt: (options.now?.() ?? new Date()).toISOString(),
    hosts: releaseHosts,
  });
}
