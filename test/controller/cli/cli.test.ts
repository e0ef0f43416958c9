import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePublicKey, parseSecretKey } from '../../../shared/src/keys.js';
import { HostList } from '../../../shared/src/operator-api.js';
import { findOperator } from '../../../controller/src/auth/operator-tokens.js';
import { openDatabase } from '../../../controller/src/db/open.js';
import { openStore } from '../../../controller/src/db/store.js';
import { runCli } from '../../../controller/src/cli/run.js';
import { storePath } from '../helpers.js';
import { liveController, type LiveController } from '../server-helpers.js';

const SHOAL = fileURLToPath(new URL('../../../bin/shoal', import.meta.url));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function spawnShoal(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(SHOAL, args, { env: { PATH: process.env.PATH, ...env }, cwd: tmpdir() }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function inProcess(args: string[], env: Record<string, string | undefined> = {}): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { env, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), fetch });
  return { code, stdout, stderr };
}

/** The operator a token names in the controller database of `stateDir`, as the controller would look it up. */
async function operatorIn(stateDir: string, token: string) {
  const store = await openStore({ database: join(stateDir, 'controller.sqlite') });
  try {
    return await findOperator(store, token);
  } finally {
    await store.close();
  }
}

describe('shoal CLI', () => {
  let ctl: LiveController;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    ctl = await liveController();
    dir = mkdtempSync(join(tmpdir(), 'shoal-cli-test-'));
    env = { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken };
  });
  afterAll(async () => {
    await ctl.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs as a process: keygen, token create, set, status, and a one-line error when the controller is unreachable', async () => {
    const keyFile = join(dir, 'release.key');
    await ctl.register('web-1');
    const stateDir = mkdtempSync(join(dir, 'state-'));
    openDatabase(join(stateDir, 'controller.sqlite')).close();
    const [keygen, token, unreachable] = await Promise.all([
      spawnShoal(['keygen', '--name', 'release-2', '--out', keyFile]),
      spawnShoal(['token', 'create', '--state-dir', stateDir, '--name', 'ci']),
      spawnShoal(['status', '--controller', 'http://127.0.0.1:9', '--token', 'x']),
    ]);
    expect(keygen).toMatchObject({ code: 0, stderr: '' });
    const publicKey = parsePublicKey(keygen.stdout);
    expect(publicKey.keyId).toBe('release-2');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(Buffer.from(parseSecretKey(readFileSync(keyFile, 'utf8')).publicKey)).toEqual(Buffer.from(publicKey.publicKey));

    expect(token.code).toBe(0);
    expect(await operatorIn(stateDir, token.stdout.trim())).toMatchObject({ name: 'ci' });

    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stdout).toBe('');
    expect(unreachable.stderr).toMatch(/^shoal: cannot reach the controller at http:\/\/127\.0\.0\.1:9 \(.+\)\n$/);

    const set = await spawnShoal(['set', 'web-1', storePath('sys', 'a'), '--action', 'switch'], env);
    expect(set).toMatchObject({ code: 0, stderr: '' });
    expect(set.stdout).toContain(`web-1: generation #1 ${storePath('sys', 'a')} (switch)`);
    const status = await spawnShoal(['status', '--json'], env);
    expect(status.code).toBe(0);
    expect(HostList.parse(JSON.parse(status.stdout)).hosts.find((h) => h.name === 'web-1')?.desired?.version).toBe(1);
  });

  it('prints fleet status as a table of at most 80 columns', async () => {
    await ctl.register('a-host-with-a-rather-long-name');
    await ctl.register('db-1');
    await ctl.setDesired('db-1', storePath('sys', 'd'));
    const result = await inProcess(['status'], env);
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\d+ hosts: 0 healthy, \d+ offline$/);
    expect(lines[2]).toMatch(/^HOST\s+PHASE\s+GEN\s+RELEASE\s+ROLLOUT\s+SEEN\s+CONN$/);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    // The generation number, not a version; "*": not yet on it; the release its statement names.
    expect(lines.find((l) => l.startsWith('db-1'))).toMatch(/^db-1\s+-\s+#1\*\s+\S+\s+-\s+never\s+offline$/);
    expect(lines.some((l) => l.startsWith('a-host-with-a…'))).toBe(true);
  });

  it('creates enrollment tokens, registers hosts and shows history', async () => {
    const token = await inProcess(['enroll-token', 'create', '--ttl', '2h', '--max-uses', '5', '--tag', 'web', '--json'], env);
    expect(token.code).toBe(0);
    expect(JSON.parse(token.stdout)).toMatchObject({ maxUses: 5, token: expect.stringMatching(/^shoal_enroll_/) });
    const key = Buffer.alloc(32, 7).toString('base64');
    expect(await inProcess(['host', 'register', 'cache-1', '--public-key', key, '--tag', 'cache'], env)).toMatchObject({ code: 0, stdout: 'registered cache-1\n' });
    await inProcess(['set', 'cache-1', storePath('sys', 'c')], env);
    const history = await inProcess(['history', 'cache-1'], env);
    expect(history.stdout.split('\n')[0]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  test-admin registered the host with tags cache$/);
    expect(history.stdout).toContain(`test-admin set the desired system: generation #1, ${storePath('sys', 'c').slice('/nix/store/'.length, '/nix/store/'.length + 7)}`);
    expect(history.stdout).not.toContain('{');
  });

  it('reports each failure as one line and a non-zero exit', async () => {
    const cases: Array<[string[], Record<string, string | undefined>, RegExp]> = [
      [['set', 'ghost', storePath()], env, /^shoal: no host named "ghost" \(unknown-host, HTTP 404\)\n$/],
      [['set', 'web-1', '/tmp/system'], env, /^shoal: invalid request: storePath: not a Nix store path .*\n$/],
      [['set', 'web-1', storePath(), '--action', 'reboot'], env, /^shoal: --action must be one of safe-switch, switch, boot, dry-activate/],
      [['status'], { ...env, SHOAL_TOKEN: 'shoal_op_wrong' }, /^shoal: operator token is not known .*\(invalid-token, HTTP 401\)\n$/],
      [['status'], { SHOAL_CONTROLLER: ctl.handle.url }, /^shoal: no operator token: pass --token/],
      [['status', '--token-file', join(dir, 'missing')], env, /^shoal: cannot read token file .*missing: ENOENT\n$/],
      [['history'], env, /^shoal: expected HOST, got none\n$/],
      [['status', '--wat'], env, /^shoal: unknown option --wat\n$/],
      [['status', '--jsno'], env, /^shoal: unknown option --jsno; did you mean "--json"\?\n$/],
      [['history', 'web-1', '--limit'], env, /^shoal: option --limit needs a value\n$/],
      [['frobnicate'], env, /^shoal: unknown command "frobnicate"; see shoal --help\n$/],
      [['rolout', 'list'], env, /^shoal: unknown command "rolout"; did you mean "rollout"\?/],
      [['rollout', 'stat', 'r1'], env, /^shoal: unknown subcommand "rollout stat"; did you mean "status"\?/],
      [['rollout'], env, /^shoal: rollout needs a subcommand: plan, start/],
      [['token', 'create', '--state-dir', join(dir, 'nowhere')], env, /^shoal: no controller database at .*nowhere\/controller\.sqlite; has the controller been started with that state dir\?\n$/],
      [
        ['token', 'create', '--db', 'postgres://shoal:hunter2@db.example.org/shoal'],
        env,
        /^shoal: token create --db: opening the controller's database directly is for its SQLite file only, not postgres:\/\/shoal:\*\*\*@db\.example\.org\/shoal; with PostgreSQL, leave out --db and --state-dir to token create over the API \(admin token\)\n$/,
      ],
      [['token', 'create', '--scope', 'root'], env, /^shoal: --scope must be one of read, deploy, admin, ci, got "root"\n$/],
      [['enroll-token', 'create', '--ttl', 'soon'], env, /^shoal: --ttl must be a duration/],
    ];
    for (const [args, caseEnv, pattern] of cases) {
      const result = await inProcess(args, caseEnv);
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(result.stdout, args.join(' ')).toBe('');
      expect(result.stderr, args.join(' ')).toMatch(pattern);
      expect(result.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('lists and revokes operator tokens on the controller machine', async () => {
    const stateDir = mkdtempSync(join(dir, 'state-'));
    openDatabase(join(stateDir, 'controller.sqlite')).close();
    const created = JSON.parse((await inProcess(['token', 'create', '--state-dir', stateDir, '--name', 'laptop', '--json'])).stdout) as { id: string; token: string };
    const listed = JSON.parse((await inProcess(['token', 'list', '--state-dir', stateDir, '--json'])).stdout) as { tokens: Array<{ id: string; name: string; revokedAt: string | null }> };
    expect(listed.tokens).toEqual([expect.objectContaining({ id: created.id, name: 'laptop', revokedAt: null })]);
    expect(await inProcess(['token', 'revoke', '--state-dir', stateDir, created.id])).toMatchObject({ code: 0, stdout: `revoked ${created.id}\n` });
    expect(await operatorIn(stateDir, created.token)).toBeNull();
    const again = await inProcess(['token', 'revoke', '--state-dir', stateDir, created.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^shoal: no active operator token with id/);
    const nowhere = await inProcess(['token', 'create', '--state-dir', join(dir, 'no-such-state')]);
    expect(nowhere.stderr).toMatch(/^shoal: no controller database at .*no-such-state\/controller\.sqlite; has the controller been started/);
  });

  it('creates a CI-scoped token that may publish releases and nothing else', async () => {
    const stateDir = mkdtempSync(join(dir, 'state-'));
    openDatabase(join(stateDir, 'controller.sqlite')).close();
    const created = JSON.parse((await inProcess(['token', 'create', '--state-dir', stateDir, '--name', 'ci', '--scope', 'ci', '--json'])).stdout) as { token: string; scope: string };
    expect(created.scope).toBe('ci');
    const listed = await inProcess(['token', 'list', '--state-dir', stateDir]);
    expect(listed.stdout).toMatch(/^\w+ +ci +ci +created /);
    expect(await operatorIn(stateDir, created.token)).toMatchObject({ name: 'ci', scope: 'ci' });
    const bad = await inProcess(['token', 'create', '--state-dir', stateDir, '--scope', 'root']);
    expect(bad).toMatchObject({ code: 2, stderr: 'shoal: --scope must be one of read, deploy, admin, ci, got "root"\n' });
  });

  it('reads the token from a file', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, `${ctl.operatorToken}\n`);
    const result = await inProcess(['status', '--json'], { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN_FILE: file });
    expect(result.code).toBe(0);
  });
});
