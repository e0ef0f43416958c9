import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../controller/src/cli/run.js';
import { parse } from '../../../controller/src/cli/args.js';
import { CliError } from '../../../controller/src/cli/context.js';
import { COMMANDS } from '../../../controller/src/cli/table/index.js';
import { liveController, type LiveController } from '../server-helpers.js';
import { REPO, shoal } from './cli-helpers.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function inProcess(args: string[], env: Record<string, string | undefined>, isTTY = false): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { env, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), fetch, isTTY });
  return { code, stdout, stderr };
}

describe('shoal CLI config file', () => {
  let ctl: LiveController;
  let dir: string;
  beforeAll(async () => {
    ctl = await liveController();
    dir = mkdtempSync(join(tmpdir(), 'shoal-cli-config-'));
    writeFileSync(join(dir, 'token'), `${ctl.operatorToken}\n`);
  });
  afterAll(async () => {
    await ctl.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the controller and the token in ~/.config/shoal/cli.json, a relative tokenFile beside it', async () => {
    const home = join(dir, 'home');
    mkdirSync(join(home, '.config', 'shoal'), { recursive: true });
    writeFileSync(join(home, '.config', 'shoal', 'token'), `${ctl.operatorToken}\n`);
    writeFileSync(join(home, '.config', 'shoal', 'cli.json'), JSON.stringify({ controller: ctl.handle.url, tokenFile: 'token' }));
    // A real process, so HOME is the only thing that points at the file.
    const result = await shoal(['rollout', 'list'], { HOME: home });
    expect(result).toMatchObject({ code: 0, stderr: '', stdout: expect.stringMatching(/^ID\s+RELEASE\s+STATE/) });
  });

  it('takes flags over the environment over the file', async () => {
    const file = join(dir, 'unreachable.json');
    writeFileSync(file, JSON.stringify({ controller: 'http://127.0.0.1:9', tokenFile: join(dir, 'token') }));
    const fromFile = await inProcess(['release', 'list', '--config', file], {});
    expect(fromFile.stderr).toMatch(/^shoal: cannot reach the controller at http:\/\/127\.0\.0\.1:9 /);
    const envOverFile = await inProcess(['release', 'list'], { SHOAL_CONFIG: file, SHOAL_CONTROLLER: ctl.handle.url });
    expect(envOverFile).toMatchObject({ code: 0, stdout: 'RELEASE               HOSTS  CREATED                SOURCE      DESCRIPTION\n(no releases)\n' });
    const flagOverEnv = await inProcess(['release', 'list', '--controller', ctl.handle.url], { SHOAL_CONFIG: file, SHOAL_CONTROLLER: 'http://127.0.0.1:9' });
    expect(flagOverEnv.code).toBe(0);
    const tokenFromEnv = await inProcess(['release', 'list'], { SHOAL_CONFIG: file, SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: 'shoal_op_wrong' });
    expect(tokenFromEnv.stderr).toMatch(/\(invalid-token, HTTP 401\)\n$/);
  });

  it('names the file and the field when the config is wrong, and a named file that is missing', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ controller: 'ctl.example.org', token: 'x' }));
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, '{');
    const cases: Array<[string[], Record<string, string>, string | RegExp]> = [
      [['status', '--config', bad], {}, `shoal: CLI config ${bad}: controller: must be an http:// or https:// URL; token: unknown field (known: controller, tokenFile)\n`],
      [['status'], { SHOAL_CONFIG: join(dir, 'absent.json') }, `shoal: cannot read CLI config ${join(dir, 'absent.json')}: ENOENT\n`],
      [['status', '--config', notJson], {}, /^shoal: CLI config .*not\.json is not valid JSON: /],
    ];
    for (const [args, env, expected] of cases) {
      const result = await inProcess(args, env);
      expect(result.code, args.join(' ')).toBe(1);
      if (typeof expected === 'string') expect(result.stderr).toBe(expected);
      else expect(result.stderr).toMatch(expected);
    }
    // Without a file anywhere, the default controller and a request for a token.
    expect((await inProcess(['status'], { HOME: join(dir, 'nobody') })).stderr).toMatch(/^shoal: no operator token: pass --token/);
  });
});

describe('shoal --help', () => {
  it('has help with an example for every command, within 80 columns', async () => {
    const commands = ['keygen', 'token create', 'token list', 'token revoke', 'enroll-token create', 'enroll-token list', 'enroll-token revoke', 'host register', 'host diff', 'host rm', 'host pause', 'host resume', 'host show', 'host set-reboot', 'tag set-reboot', 'tag list', 'host rekey', 'host unknown', 'host adopt', 'backup', 'set', 'status', 'history',
      'release build', 'release push-closures', 'release sign', 'release publish', 'release create', 'release list', 'release show', 'rollout plan', 'rollout start', 'rollout status', 'rollout watch', 'rollout list',
      'rollout approve', 'rollout pause', 'rollout resume', 'rollout abort', 'rollout rollback', 'rollout retry', 'webhook add', 'webhook list', 'webhook rm', 'webhook test', 'key show'];
    expect(COMMANDS.map((c) => c.name).sort()).toEqual([...commands].sort());
    for (const command of commands) {
      const result = await inProcess([...command.split(' '), '--help'], {});
      expect(result.code, command).toBe(0);
      expect(result.stdout, command).toMatch(new RegExp(`^usage: shoal ${command}`));
      expect(result.stdout, command).toMatch(/\nexamples?: shoal /);
      for (const line of result.stdout.split('\n')) expect(line.length, `${command}: ${line}`).toBeLessThanOrEqual(80);
      // The usage names every argument the command insists on, by the name its error uses.
      const bare = await inProcess(command.split(' '), { SHOAL_CONTROLLER: 'http://127.0.0.1:9', SHOAL_TOKEN: 't' });
      const wanted = /expected (.+), got none/.exec(bare.stderr)?.[1];
      const usage = result.stdout.split('\n\n')[0]!;
      if (wanted) for (const name of wanted.replace('...', '').split(' ')) expect(usage, command).toContain(name);
    }
    const top = await inProcess(['--help'], {});
    for (const line of top.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it('lists every option the parser accepts, and the parser accepts every option it lists', async () => {
    for (const command of COMMANDS) {
      const help = (await inProcess([...command.name.split(' '), '--help'], {})).stdout;
      // Option rows: "  -o, --out FILE   where …" under a section heading.
      const rows = [...help.matchAll(/^ {2}(?:-(\w), )?--([a-z-]+)( \S+)?/gm)].map(([, short, name, value]) => ({ short, name: name!, value: value !== undefined }));
      expect(rows.map((r) => r.name).sort(), command.name).toEqual(Object.keys(command.options).sort());
      // What the command insists on, so that only the option under test can be refused.
      const base = [...command.positionals.filter((p) => !p.startsWith('[') && !p.endsWith('...')).map(() => 'x')];
      for (const [name, option] of Object.entries(command.options)) if (option.type === 'string' && option.required) base.push(`--${name}`, 'x');
      for (const row of rows) {
        const spelled = [`--${row.name}`, ...(row.short ? [`-${row.short}`] : [])];
        for (const flag of spelled) {
          const parsed = parse([...base, flag, ...(row.value ? ['v'] : [])], command);
          const option = command.options[row.name]!;
          const expected = option.type === 'boolean' ? true : option.multiple ? ['v'] : 'v';
          expect(parsed.values[row.name], `${command.name} ${flag}`).toEqual(expected);
        }
      }
      expect(() => parse([...base, '--not-an-option'], command), command.name).toThrow(/^unknown option --not-an-option/);
    }
  });

  it('refuses bad arguments from the command table, naming the option, with exit status 2', async () => {
    const env = { SHOAL_CONTROLLER: 'http://127.0.0.1:9', SHOAL_TOKEN: 't' };
    const cases: Array<[string[], string]> = [
      [['keygen', '--out', 'k'], 'shoal: keygen needs --name NAME (the key id agents will trust)\n'],
      [['rollout', 'status', 'ro-1', '--json=yes'], 'shoal: option --json takes no value\n'],
      [['rollout', 'start', 'v1', '--bake'], 'shoal: option --bake needs a value\n'],
      [['rollout', 'status', 'ro-1', '--canary', '1'], 'shoal: unknown option --canary\n'],
      [['keygen', '--name', 'k', '--out', 'k', '--controller', 'http://x'], 'shoal: unknown option --controller\n'],
      [['rollout', 'status', 'ro-1', 'ro-2'], 'shoal: expected ID, got ro-1 ro-2\n'],
      [['release', 'publish', 'a.json', 'b.json'], 'shoal: expected [BUNDLE.json], got a.json b.json\n'],
      [['release', 'sign', 'build.json', '-o'], 'shoal: option -o needs a value\n'],
    ];
    for (const [args, stderr] of cases) expect(await inProcess(args, env), args.join(' ')).toEqual({ code: 2, stdout: '', stderr });
    expect(() => parse(['--bake'], COMMANDS.find((c) => c.name === 'rollout plan')!)).toThrow(CliError);
  });

  it('answers `shoal help COMMAND` with that command\'s help, not the global one', async () => {
    expect(await inProcess(['help', 'rollout', 'start'], {})).toMatchObject({ code: 0, stdout: expect.stringMatching(/^usage: shoal rollout start/) });
    const group = await inProcess(['help', 'rollout'], {});
    expect(group.code).toBe(0);
    expect(group.stdout).toMatch(/^usage: shoal rollout plan/);
    expect(group.stdout).toContain('usage: shoal rollout rollback');
  });
});

describe('a closed pipe', () => {
  let ctl: LiveController;
  beforeAll(async () => {
    ctl = await liveController();
    // Well over a pipe's 64 KiB buffer of JSON, so the CLI is still writing when the reader leaves.
    for (let i = 0; i < 1000; i++) await ctl.register(`pipe-${i}`);
  });
  afterAll(() => ctl.close());

  it('ends the CLI quietly when its reader goes away (`shoal status --json | head -c 10`)', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['--import', 'tsx', 'controller/src/cli/main.ts', 'status', '--json'], {
      cwd: REPO,
      env: { PATH: process.env.PATH, SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Like `head`: read the first bytes, then close the pipe while the CLI is still writing.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('colour', () => {
  let ctl: LiveController;
  beforeAll(async () => {
    ctl = await liveController();
    await ctl.register('c-1');
    await fetch(`${ctl.handle.url}/v1/releases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ctl.operatorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'c', hosts: [{ host: 'c-1', storePath: `/nix/store/${'b'.repeat(32)}-sys` }] }),
    });
  });
  afterAll(() => ctl.close());

  it('is used on a terminal only, and never with NO_COLOR', async () => {
    const env = { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken };
    const args = ['rollout', 'plan', 'c', '--canary', '0', '--approve-before', '1'];
    expect((await inProcess(args, env, true)).stdout).toContain('\x1b[');
    expect((await inProcess(args, { ...env, NO_COLOR: '1' }, true)).stdout).not.toContain('\x1b');
    expect((await inProcess(args, env, false)).stdout).not.toContain('\x1b');
  });
});
