import { relative } from 'node:path';
import { AGENT_BUNDLE, bundleAgent } from './bundle.js';

/** `npm run build:agent`: writes the agent bundle (dist/agent/shoal-agent.mjs). */
bundleAgent()
  .then((result) => {
    const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
    process.stdout.write(`agent bundle: ${relative(process.cwd(), AGENT_BUNDLE)} (${Math.round(bytes / 1024)} KiB)\n`);
  })
  .catch((error: unknown) => {
    process.stderr.write(`build:agent: ${(error as Error).message}\n`);
    process.exit(1);
  });
