import { runCli } from './run.js';

const status = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  fetch: globalThis.fetch,
  isTTY: process.stdout.isTTY === true,
});
process.exitCode = status;
