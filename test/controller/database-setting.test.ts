import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { describeDatabase, resolveDatabase, storeConfigFrom, type DatabaseSettings } from '../../controller/src/database-setting.js';
import { openStore } from '../../controller/src/db/store.js';
import { postgresTestDatabase, stopPostgresTestServer } from './postgres-database.js';

const dir = mkdtempSync(join(tmpdir(), 'shoal-database-setting-'));
afterAll(async () => {
  await stopPostgresTestServer();
  rmSync(dir, { recursive: true, force: true });
});

const settings = (fields: Partial<DatabaseSettings>): DatabaseSettings => ({ stateDir: '/var/lib/shoal-controller', database: null, databasePasswordFile: null, db: null, ...fields });

function passwordFile(name: string, content: string): string {
  const file = join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

describe('the database setting', () => {
  it('is controller.sqlite in the state dir by default, the older db setting, or database', () => {
    expect(resolveDatabase(settings({}))).toEqual({ kind: 'sqlite', file: '/var/lib/shoal-controller/controller.sqlite' });
    expect(resolveDatabase(settings({ db: '/var/lib/x/old.sqlite' }))).toEqual({ kind: 'sqlite', file: '/var/lib/x/old.sqlite' });
    expect(storeConfigFrom(settings({ database: '/var/lib/x/new.sqlite' }))).toEqual({ database: '/var/lib/x/new.sqlite' });
    expect(storeConfigFrom(settings({ database: 'postgres://shoal@db.example.org/shoal' }))).toEqual({ database: 'postgres://shoal@db.example.org/shoal' });
  });

  it('puts the password file into the URL, without its trailing newline, and redacts it in what is logged', () => {
    const file = passwordFile('plain', 'hunter2\n');
    const choice = resolveDatabase(settings({ database: 'postgresql://shoal@db.example.org:5433/shoal?sslmode=require', databasePasswordFile: file }));
    expect(choice).toEqual({ kind: 'postgres', url: 'postgresql://shoal:hunter2@db.example.org:5433/shoal?sslmode=require' });
    expect(describeDatabase(choice)).toBe('postgresql://shoal:***@db.example.org:5433/shoal?sslmode=require');
  });

  it('redacts a password given as a URL parameter too', () => {
    expect(describeDatabase({ kind: 'postgres', url: 'postgres://shoal@db.example.org/shoal?password=hunter2&sslmode=require' })).toBe(
      'postgres://shoal@db.example.org/shoal?password=***&sslmode=require',
    );
  });

  it('names the password file when it cannot be read or is empty', () => {
    const postgres = { database: 'postgres://shoal@db.example.org/shoal' };
    expect(() => resolveDatabase(settings({ ...postgres, databasePasswordFile: join(dir, 'absent') }))).toThrow(/^databasePasswordFile .*absent: cannot read: ENOENT$/);
    expect(() => resolveDatabase(settings({ ...postgres, databasePasswordFile: passwordFile('empty', '\n') }))).toThrow(/^databasePasswordFile .*empty: is empty; it must hold the PostgreSQL password$/);
  });

  it('opens a PostgreSQL store with a password from the file, whatever characters it holds', async () => {
    const database = await postgresTestDatabase();
    try {
      // A role of its own, with a password URL syntax would otherwise break: @ : / % # ? and a space.
      const password = 'p@ss:w/rd%41 #?&=';
      const admin = new pg.Client({ connectionString: database.server.adminUrl });
      await admin.connect();
      try {
        await admin.query(`CREATE ROLE shoal_file LOGIN IN ROLE shoal PASSWORD '${password}'`);
      } finally {
        await admin.end();
      }
      const url = new URL(database.url);
      url.username = 'shoal_file';
      url.password = '';
      const config = storeConfigFrom(settings({ database: url.toString(), databasePasswordFile: passwordFile('special', `${password}\n`) }));
      const store = await openStore({ ...config, replicaId: 'password-file' });
      try {
        const who = await store.db.execute<{ user: string }>('select current_user as user');
        expect(who.rows).toEqual([{ user: 'shoal_file' }]);
      } finally {
        await store.close();
      }
      // And the password is what authenticates: a wrong one in the file is refused.
      const wrong = storeConfigFrom(settings({ database: url.toString(), databasePasswordFile: passwordFile('wrong', 'not-it\n') }));
      await expect(openStore({ ...wrong, replicaId: 'wrong-password' })).rejects.toThrow(/password authentication failed/);
    } finally {
      await database.drop();
    }
  });
});
