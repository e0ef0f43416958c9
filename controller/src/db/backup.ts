import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import type Database from 'better-sqlite3';
import type { Clock } from '../clock.js';
import type { Db } from './open.js';

/**
 * A consistent copy of the live database, taken online with SQLite's backup API (better-sqlite3
 * copies in steps and yields between them, so the controller keeps serving; writes made meanwhile
 * through this connection are carried into the copy). The copy is written next to the database
 * (same filesystem, room enough), mode 0600 (it holds webhook secrets and token hashes), opened,
 * unlinked, and streamed from the open file, so nothing is left behind even if the client goes away.
 */
export async function streamBackup(db: Db, clock: Clock): Promise<{ stream: ReadableStream<Uint8Array>; bytes: number; fileName: string }> {
  // drizzle keeps the better-sqlite3 handle it was made with (Db's type does not say so).
  const sqlite = (db as Db & { $client: Database.Database }).$client;
  const stamp = new Date(clock.now()).toISOString().replace(/[:.]/g, '-');
  const fileName = `shoal-controller-${stamp}.sqlite`;
  const dir = sqlite.memory ? tmpdir() : dirname(sqlite.name);
  const file = join(dir, `.${fileName}.${randomBytes(6).toString('hex')}.tmp`);
  closeSync(openSync(file, 'wx', 0o600));
  let fd: number;
  try {
    await sqlite.backup(file);
    fd = openSync(file, 'r');
  } finally {
    rmSync(file, { force: true });
    for (const suffix of ['-journal', '-wal', '-shm']) rmSync(`${file}${suffix}`, { force: true });
  }
  try {
    const bytes = fstatSync(fd).size;
    const stream = Readable.toWeb(createReadStream('', { fd, autoClose: true })) as ReadableStream<Uint8Array>;
    return { stream, bytes, fileName };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}
