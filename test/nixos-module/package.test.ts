import { existsSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { AGENT_BUNDLE, agentNodeFlags } from '../../agent/build/bundle.js';
import { describe, expect, it } from 'vitest';
import { SKIP_WITHOUT_LIB, nixInstantiate, nixpkgsLib, repoRoot } from './nix.js';

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

interface PackageEval {
  pname: string;
  version: string;
  installPhase: string;
  installCheckPhase: string;
  npmConfigHook: string;
  npmBuildScript: string;
  env: Record<string, string>;
  entryPoints: Record<string, string>;
  nodeFlags: Record<string, string[]>;
  node: string;
  srcIncludes: Record<string, boolean>;
  unresolved: string[];
  resolved: Record<string, string | null>;
}

function evalNix<T>(args: string[]): T {
  const result = nixInstantiate(['--eval', '--strict', '--json', ...args]);
  if (!result.ok) throw new Error(result.stderr);
  return JSON.parse(result.stdout) as T;
}

function resolveLock(lock: object): { packages: Record<string, Record<string, unknown>> } {
  return evalNix([
    '-E',
    `{ lock }: import ./nixos-module/npm-lock-resolved.nix { lib = import ${lib}/lib; } { lock = builtins.fromJSON lock; }`,
    '--argstr',
    'lock',
    JSON.stringify(lock),
  ]);
}

const readJson = (file: string) => JSON.parse(readFileSync(join(repoRoot, file), 'utf8'));

describe.skipIf(!lib)('npm-lock-resolved.nix', () => {
  it('gives registry packages the tarball URL npm would fetch, and leaves everything else alone', () => {
    const integrity = 'sha512-AAAA';
    const lock = {
      lockfileVersion: 3,
      packages: {
        '': { name: 'shoal', version: '0.1.0' },
        'node_modules/ws': { version: '8.18.0', integrity },
        'node_modules/@hono/node-server': { version: '2.1.9', integrity },
        'node_modules/a/node_modules/@s/b': { version: '1.0.0', integrity },
        'node_modules/alias': { name: 'real-name', version: '2.0.0', integrity },
        'node_modules/local': { resolved: 'packages/local', link: true },
        'node_modules/pinned': { version: '1.0.0', resolved: 'https://mirror.example/pinned.tgz', integrity },
      },
    };
    const resolved = Object.fromEntries(
      Object.entries(resolveLock(lock).packages).map(([path, entry]) => [path, entry.resolved ?? null]),
    );
    expect(resolved).toEqual({
      '': null,
      'node_modules/ws': 'https://registry.npmjs.org/ws/-/ws-8.18.0.tgz',
      'node_modules/@hono/node-server': 'https://registry.npmjs.org/@hono/node-server/-/node-server-2.1.9.tgz',
      'node_modules/a/node_modules/@s/b': 'https://registry.npmjs.org/@s/b/-/b-1.0.0.tgz',
      'node_modules/alias': 'https://registry.npmjs.org/real-name/-/real-name-2.0.0.tgz',
      'node_modules/local': 'packages/local',
      'node_modules/pinned': 'https://mirror.example/pinned.tgz',
    });
  });

  it("pins every package of the repository's lock by integrity, so each fetch is checked", () => {
    const lock = readJson('package-lock.json') as { packages: Record<string, { integrity?: string; link?: boolean }> };
    const unpinned = Object.entries(lock.packages)
      .filter(([path, entry]) => path !== '' && !entry.link && !/^sha(256|512)-/.test(entry.integrity ?? ''))
      .map(([path]) => path);
    expect(unpinned).toEqual([]);
  });
});

describe.skipIf(!lib)('package.nix', () => {
  const pkg = lib
    ? evalNix<PackageEval>([join(repoRoot, 'test/nixos-module/package.nix'), '--argstr', 'nixpkgsLib', lib])
    : undefined;

  it('fetches every locked package through importNpmLock, with no npmDepsHash to maintain', () => {
    expect(pkg!.unresolved).toEqual([]);
    expect(pkg!.npmConfigHook).toBe('importNpmLock.npmConfigHook');
    expect(pkg!.resolved['node_modules/better-sqlite3']).toMatch(
      /^https:\/\/registry\.npmjs\.org\/better-sqlite3\/-\/better-sqlite3-[\d.]+\.tgz$/,
    );
  });

  it('builds from the sources and config tsc needs, not tests, node_modules or a local dist', () => {
    expect(pkg!.srcIncludes).toEqual({
      '.git': false,
      agent: true,
      'agent/src/config.ts': true,
      bench: false,
      'controller/drizzle/0000_init.sql': true,
      // The PostgreSQL migrations, for a controller whose `database` is a postgres:// URL.
      'controller/drizzle-pg/0000_init.sql': true,
      dist: false,
      'nixos-module': false,
      node_modules: false,
      'package-lock.json': true,
      'package.json': true,
      'shared/src/protocol.ts': true,
      test: false,
      'test/nixos-module/eval.nix': false,
      'tsconfig.build.json': true,
      'tsconfig.json': true,
    });
  });

  it('compiles with npm run build and builds better-sqlite3 from source', () => {
    expect(pkg!.npmBuildScript).toBe('build');
    expect(readJson('package.json').scripts.build).toMatch(/^tsc -p tsconfig\.build\.json.* && npm run build:agent$/);
    expect(pkg!.env.npm_config_build_from_source).toBe('true');
  });

  it('wraps node, with its flags, around the entry point of each executable in package.json', () => {
    expect(Object.keys(pkg!.entryPoints).sort()).toEqual(Object.keys(readJson('package.json').bin).sort());
    for (const [exe, entry] of Object.entries(pkg!.entryPoints)) {
      const flags = (pkg!.nodeFlags[exe] ?? []).map((flag) => `--add-flags ${flag} `).join('');
      expect(pkg!.installPhase).toContain(
        `makeWrapper ${pkg!.node}/bin/node $out/bin/${exe} ${flags}--add-flags $out/lib/node_modules/shoal/${entry}\n`,
      );
    }
  });

  it("runs the agent's bundle with agent/node-flags, as the benchmark and the lab's bundle mode do", () => {
    expect(pkg!.entryPoints['shoal-agent']).toBe(`agent/${basename(AGENT_BUNDLE)}`);
    expect(relative(repoRoot, AGENT_BUNDLE)).toBe(`dist/${pkg!.entryPoints['shoal-agent']}`);
    expect(readJson('package.json').scripts['build:agent']).toBe('tsx agent/build/main.ts');
    expect(pkg!.nodeFlags['shoal-agent']).toEqual(agentNodeFlags());
    expect(pkg!.nodeFlags['shoal-agent']).toContain('--max-semi-space-size=1');
    expect(pkg!.installCheckPhase).toContain('$out/bin/shoal-agent --help');
  });

  it('installs compiled files where tsc puts them: the source layout under dist/', () => {
    const build = readJson('tsconfig.build.json');
    const base = readJson('tsconfig.json');
    expect(build.compilerOptions.rootDir).toBe('.');
    expect(build.compilerOptions.outDir ?? base.compilerOptions.outDir).toBe('dist');
    expect(pkg!.installPhase).toContain('cp -r dist/. $out/lib/node_modules/shoal/');
  });

  // The agent's bundle is checked above; the others run what tsc compiles.
  const entrySources = lib && pkg ? Object.entries(pkg.entryPoints).filter(([exe]) => exe !== 'shoal-agent').map(([exe, js]) => [exe, js.replace(/\.js$/, '.ts')]) : [];
  const missing = entrySources.filter(([, ts]) => !existsSync(join(repoRoot, ts!)));
  if (missing.length > 0) {
    console.warn(`entry points not written yet, skipping their check: ${missing.map(([, ts]) => ts).join(', ')}`);
  }
  it.each(entrySources.filter(([, ts]) => existsSync(join(repoRoot, ts!))))(
    '%s runs %s, a source file the build compiles',
    (_exe, ts) => {
      expect(readJson('tsconfig.build.json').include).toContain(ts!.split('/').slice(0, 2).join('/'));
    },
  );
});
