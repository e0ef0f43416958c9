import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadOrCreateIdentity } from '../../agent/src/identity.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { useTmpDirs } from './tmp-dir.js';

describe('host identity', () => {
  const tmpDir = useTmpDirs();

  it('creates a key pair on first start in a file only root can read', async () => {
    const stateDir = join(await tmpDir(), 'state');
    const { identity, created } = await loadOrCreateIdentity(stateDir);
    expect(created).toBe(true);
    expect((await stat(identity.file)).mode & 0o777).toBe(0o600);
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    const message = new TextEncoder().encode('challenge');
    expect(tweetnaclEd25519.verify(message, tweetnaclEd25519.sign(message, identity.secretKey), identity.publicKey)).toBe(true);
  });

  it('loads the same key on the next start', async () => {
    const stateDir = await tmpDir();
    const first = await loadOrCreateIdentity(stateDir);
    const second = await loadOrCreateIdentity(stateDir);
    expect(second.created).toBe(false);
    expect(Buffer.from(second.identity.publicKey)).toEqual(Buffer.from(first.identity.publicKey));
    expect((await readFile(join(stateDir, 'host.key'), 'utf8')).trim()).toHaveLength(88);
  });

  it('refuses to start with a key file that group or others can read', async () => {
    const stateDir = await tmpDir();
    const { identity } = await loadOrCreateIdentity(stateDir);
    await chmod(identity.file, 0o640);
    await expect(loadOrCreateIdentity(stateDir)).rejects.toThrow(`host key ${identity.file} is readable by group or others (mode 0640)`);
  });

  it.each([
    ['an empty', ''],
    ['a cut-short', 'q2Vb3x0K'],
  ])('replaces %s key file of a host that never enrolled, keeping the old file aside', async (_what, content) => {
    const stateDir = await tmpDir();
    await writeFile(join(stateDir, 'host.key'), content, { mode: 0o600 });
    const { identity, created } = await loadOrCreateIdentity(stateDir, { enrolled: false });
    expect(created).toBe(true);
    expect((await readFile(identity.file, 'utf8')).trim()).toHaveLength(88);
    const names = await readdir(stateDir);
    expect(names.filter((n) => n.startsWith('host.key.damaged-'))).toHaveLength(1);
    expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a damaged key of an enrolled host and says what to do', async () => {
    const stateDir = await tmpDir();
    await writeFile(join(stateDir, 'host.key'), '', { mode: 0o600 });
    await expect(loadOrCreateIdentity(stateDir, { enrolled: true })).rejects.toThrow(/found 0 bytes\. This host enrolled with the key that was there; .*re-key the host/);
  });
});
