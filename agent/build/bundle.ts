import { build, type BuildOptions, type BuildResult } from 'esbuild';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/**
 * Where `npm run build:agent` writes the agent bundle. Under dist/agent/ so that the NixOS
 * package's `cp -r dist/.` installs it next to the compiled tree, as agent/shoal-agent.mjs.
 */
export const AGENT_BUNDLE = `${REPO_ROOT}/dist/agent/shoal-agent.mjs`;

/** Node's flags for the agent daemon, one per line in agent/node-flags (see the comments there). */
export const AGENT_NODE_FLAGS_FILE = `${REPO_ROOT}/agent/node-flags`;

export function agentNodeFlags(file = AGENT_NODE_FLAGS_FILE): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** One ES module for Node 20 from an entry and what it imports (the agent's bundle, the benchmark's load generators). */
export const NODE_ESM_BUNDLE = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // ws's optional native speed-ups: it falls back to JavaScript when they are absent.
  external: ['bufferutil', 'utf-8-validate'],
  // The CommonJS dependencies (ws, pino) call require() for Node's own modules.
  banner: { js: "import { createRequire as __shoalCreateRequire } from 'node:module'; const require = __shoalCreateRequire(import.meta.url);" },
} satisfies BuildOptions;

/**
 * The agent and everything it imports in one ES module. A daemon on every host pays in memory
 * for each module it loads: one file means no module resolution, no per-file wrappers, and only
 * the parts of its dependencies it calls (zod's namespace import is tree-shaken to the schema
 * kinds in use). Minified because V8 keeps every script's source text on the heap for lazy
 * compilation; names are kept so that error and class names in logs stay readable.
 */
export async function bundleAgent(outfile = AGENT_BUNDLE): Promise<BuildResult<{ metafile: true }>> {
  return build({
    ...NODE_ESM_BUNDLE,
    absWorkingDir: REPO_ROOT,
    entryPoints: ['agent/src/main.ts'],
    outfile,
    minify: true,
    keepNames: true,
    sourcemap: false,
    metafile: true,
    logLevel: 'warning',
  });
}
