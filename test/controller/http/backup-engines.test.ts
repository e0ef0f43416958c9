import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../../../controller/src/app.js';
import { createOperatorToken } from '../../../controller/src/auth/operator-tokens.js';
import { createDeps } from '../../../controller/src/deps.js';
import { createManifestSigner } from '../../../controller/src/manifests/signer.js';
import { ManualClock, testKeys } from '../helpers.js';
import { storeEngines, type OpenedStore } from '../store-engines.js';

/** The online backup copies the SQLite file; on PostgreSQL the operator is sent to that engine's own tools. */
describe.each(storeEngines)('GET /v1/backup ($name)', (engine) => {
  let opened: OpenedStore | null = null;
  afterEach(async () => {
    await opened?.dispose();
    opened = null;
  });

  it(engine.name === 'sqlite' ? 'streams a copy of the database file' : 'refuses with 409 backup-sqlite-only, naming pg_dump and pg_restore', async () => {
    opened = await engine.open();
    const { store } = opened;
    const clock = new ManualClock();
    const { controllerKey, trust } = testKeys('single-key');
    const app = createApp(createDeps({ store, signer: createManifestSigner(controllerKey), releaseTrust: trust, clock }));
    const { token } = await createOperatorToken(store, clock, 'admin');
    const response = await app.request('/v1/backup', { headers: { authorization: `Bearer ${token}` } });
    if (engine.name === 'sqlite') {
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/vnd.sqlite3');
      expect(Buffer.from(await response.arrayBuffer()).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
      return;
    }
    expect(response.status).toBe(409);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('backup-sqlite-only');
    expect(body.error.message).toMatch(/pg_dump.*pg_restore/);
  });
});
