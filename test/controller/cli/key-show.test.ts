import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { loadOrCreateIdentity } from '../../../agent/src/identity.js';
import { runCli } from '../../../controller/src/cli/run.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-key-show-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function shoal(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { env: {}, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), fetch });
  return { code, stdout, stderr };
}

it('prints the public half of a keygen key again, the same line keygen printed', async () => {
  const file = join(dir, 'controller.key');
  const made = await shoal(['keygen', '--name', 'controller-1', '--out', file]);
  expect(made.code).toBe(0);
  expect(await shoal(['key', 'show', file])).toEqual({ code: 0, stdout: made.stdout, stderr: '' });
});

it("prints an agent host key's public half as host register takes it", async () => {
  const { identity } = await loadOrCreateIdentity(join(dir, 'agent'));
  const shown = await shoal(['key', 'show', identity.file]);
  expect(shown).toEqual({ code: 0, stdout: `${Buffer.from(identity.publicKey).toString('base64')}\n`, stderr: '' });
});

it('names a file that holds no key', async () => {
  const file = join(dir, 'not-a-key');
  writeFileSync(file, 'hello\n');
  expect(await shoal(['key', 'show', file])).toMatchObject({ code: 1, stderr: `shoal: ${file} holds neither a shoal key ("NAME:BASE64") nor an agent host key (base64 of 64 bytes)\n` });
  expect(await shoal(['key', 'show', join(dir, 'missing')])).toMatchObject({ code: 1, stderr: expect.stringContaining('ENOENT') });
});
