import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentNodeFlags } from '../../agent/build/bundle.js';

const REPO = resolve(import.meta.dirname, '../..');

/**
 * bin/shoal-agent in a stand-in checkout (its own location decides the repo): stub sources and a
 * stub bundle that print which one ran and with which node flags.
 */
describe('bin/shoal-agent chooses between the bundle and the sources', () => {
  let repo: string;
  const run = (env: Record<string, string> = {}) => {
    const result = spawnSync(join(repo, 'bin/shoal-agent'), ['--help'], { cwd: tmpdir(), encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
    expect(result.stderr).toBe('');
    return JSON.parse(result.stdout) as { ran: string; flags: string[]; args: string[] };
  };
  const age = (path: string, secondsAgo: number) => {
    const at = new Date(Date.now() - secondsAgo * 1000);
    utimesSync(path, at, at);
  };

  beforeEach(() => {
    repo = mkdtempSync(join(tmpdir(), 'shoal-bin-agent-'));
    for (const dir of ['bin', 'agent/src', 'shared/src', 'dist/agent']) mkdirSync(join(repo, dir), { recursive: true });
    copyFileSync(join(REPO, 'bin/shoal-agent'), join(repo, 'bin/shoal-agent'));
    copyFileSync(join(REPO, 'agent/node-flags'), join(repo, 'agent/node-flags'));
    symlinkSync(join(REPO, 'node_modules'), join(repo, 'node_modules'));
    writeFileSync(join(repo, 'tsconfig.json'), '{}');
    writeFileSync(join(repo, 'package-lock.json'), '{}');
    const stub = (ran: string) => `console.log(JSON.stringify({ ran: ${JSON.stringify(ran)}, flags: process.execArgv.filter((a) => a.startsWith('--') && a !== '--import'), args: process.argv.slice(2) }));\n`;
    writeFileSync(join(repo, 'agent/src/main.ts'), stub('source'));
    writeFileSync(join(repo, 'shared/src/protocol.ts'), 'export {};\n');
    for (const file of ['agent/node-flags', 'agent/src/main.ts', 'shared/src/protocol.ts', 'package-lock.json']) age(join(repo, file), 60);
    writeFileSync(join(repo, 'dist/agent/shoal-agent.mjs'), stub('bundle'));
  });
  afterEach(() => rmSync(repo, { recursive: true, force: true }));

  it('runs a bundle newer than its sources, with the node flags the package sets', () => {
    expect(run()).toEqual({ ran: 'bundle', flags: agentNodeFlags(), args: ['--help'] });
  });

  it('runs the sources when one of them changed after the bundle was built', () => {
    age(join(repo, 'dist/agent/shoal-agent.mjs'), 120);
    expect(run().ran).toBe('source');
  });

  it('runs the sources without a bundle, and when told to', () => {
    expect(run({ SHOAL_AGENT_FROM_SOURCE: '1' })).toMatchObject({ ran: 'source', args: ['--help'] });
    rmSync(join(repo, 'dist'), { recursive: true });
    expect(run().ran).toBe('source');
  });
});
