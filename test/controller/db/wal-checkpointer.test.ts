import type Database from 'better-sqlite3';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type OpenDatabase } from '../../../controller/src/db/open.js';
import { openSqliteStore, sqliteWriter } from '../../../controller/src/db/sqlite-store.js';
import { WalCheckpointer } from '../../../controller/src/db/wal-checkpointer.js';
import { captureLogger } from '../../agent/log-capture.js';
import { waitFor } from '../../lab/wait.js';

// A host row with a key this long takes about a page of its own: rows count pages.
const PAGE_SIZED_KEY = 'k'.repeat(3000);

let dir: string;
let file: string;
/** Rows written so far by the test. */
let written: number;
beforeEach(() => {
  written = 0;
  dir = mkdtempSync(join(tmpdir(), 'shoal-wal-'));
  file = join(dir, 'controller.sqlite');
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `transactions` commits of `rows` page-sized rows each, on the writer, telling `committed` after each. */
function write(sqlite: Database.Database, transactions: number, rows: number, committed: () => void = () => {}): void {
  const insert = sqlite.prepare('insert into hosts (name, public_key) values (?, ?)');
  for (let t = 0; t < transactions; t++) {
    sqlite.transaction(() => {
      for (let r = 0; r < rows; r++) insert.run(`host-${written++}`, PAGE_SIZED_KEY);
    })();
    committed();
  }
}

/** Whether the database file itself holds every page (what is left in the WAL has been copied). */
function copied(sqlite: Database.Database): boolean {
  const pages = sqlite.pragma('page_count', { simple: true }) as number;
  const pageSize = sqlite.pragma('page_size', { simple: true }) as number;
  return statSync(file).size >= pages * pageSize;
}

/**
 * The frames in the WAL once the thread has copied all of them: asked only when the file shows the
 * copy, so the asking copies nothing itself (and while the thread's pass still runs it is busy).
 */
function copiedWalFrames(sqlite: Database.Database): number | null {
  if (!copied(sqlite)) return null;
  const [result] = sqlite.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
  return result!.busy === 0 && result!.checkpointed === result!.log ? result!.log : null;
}

function walBytes(): number {
  return existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0;
}

describe('WAL checkpoints off the event loop', () => {
  it('copies committed pages into the database file on its thread, and the WAL starts over instead of growing', async () => {
    const store = openSqliteStore({ database: file });
    try {
      const { sqlite } = sqliteWriter(store);
      const rounds: number[] = [];
      // The first round starts the thread (the WAL passes 1 MiB); the others are what it does.
      for (let round = 0; round < 4; round++) {
        for (let t = 0; t < 15; t++) {
          await store.transaction(async (tx) => {
            await tx.insert(store.t.hosts).values(Array.from({ length: 100 }, () => ({ name: `host-${written++}`, publicKey: PAGE_SIZED_KEY })));
          });
        }
        rounds.push(await waitFor('the thread to copy the WAL into the database file', () => copiedWalFrames(sqlite), { intervalMs: 20 }));
      }
      const [, first, ...later] = rounds;
      // ~1,500 pages a round: the writer no longer checkpoints at SQLite's 1,000 pages...
      expect(first).toBeGreaterThan(1000);
      // ...and the WAL held one round's worth each time, not all of them.
      for (const frames of later) expect(frames).toBeLessThan(first! * 1.5);
    } finally {
      await store.close();
    }
  });

  it('leaves every committed row in the database file alone once the store is closed', async () => {
    const store = openSqliteStore({ database: file });
    for (let t = 0; t < 20; t++) {
      await store.transaction(async (tx) => {
        await tx.insert(store.t.hosts).values(Array.from({ length: 50 }, () => ({ name: `host-${written++}`, publicKey: PAGE_SIZED_KEY })));
      });
    }
    await store.close();
    expect(walBytes()).toBe(0);
    // Only the database file, as a copy taken of a stopped controller's file would be.
    const copy = join(dir, 'copy.sqlite');
    copyFileSync(file, copy);
    const opened = openDatabase(copy);
    try {
      expect(opened.sqlite.prepare('select count(*) from hosts').pluck().get()).toBe(1000);
      expect(opened.sqlite.pragma('integrity_check', { simple: true })).toBe('ok');
    } finally {
      opened.close();
    }
  });

  it('starts its thread only once the WAL has grown: a store opened for a moment goes without', async () => {
    const database = openDatabase(file);
    const checkpointer = new WalCheckpointer(database.sqlite, { logger: captureLogger().logger });
    try {
      write(database.sqlite, 2, 10, () => checkpointer.committed());
      expect(checkpointer.thread).toBeNull();
      write(database.sqlite, 3, 100, () => checkpointer.committed());
      expect(checkpointer.thread).not.toBeNull();
      await waitFor('the thread to take over', () => checkpointer.active, { intervalMs: 10 });
    } finally {
      await checkpointer.close();
      database.close();
    }
  });

  describe('without its thread', () => {
    let database: OpenDatabase;
    let checkpointer: WalCheckpointer;
    beforeEach(() => {
      database = openDatabase(file);
    });
    afterEach(async () => {
      await checkpointer.close();
      database.close();
    });

    /** The writer checkpoints on commit again, at SQLite's 1,000 pages, and the WAL starts over each time. */
    function expectWriterCheckpoints(): void {
      const { sqlite } = database;
      write(sqlite, 30, 100, () => checkpointer.committed());
      // 3,000 pages written; the WAL never held much more than 1,000 of them.
      expect(walBytes()).toBeLessThan(1300 * (4096 + 24));
      expect(sqlite.prepare('select count(*) from hosts').pluck().get()).toBe(written);
    }

    it('falls back to the writer when the thread cannot start, and says so', async () => {
      const { logger, entries } = captureLogger();
      checkpointer = new WalCheckpointer(database.sqlite, { logger, driver: join(dir, 'no-such-driver.js'), limits: { startWalBytes: 0 } });
      await waitFor('the failure to be logged', () => entries().find((entry) => /checkpoint thread stopped/.test(String(entry.msg))));
      expect(checkpointer.thread).toBeNull();
      expectWriterCheckpoints();
    });

    it('falls back to the writer when the thread dies, and says so', async () => {
      const { logger, entries } = captureLogger();
      checkpointer = new WalCheckpointer(database.sqlite, { logger, limits: { startWalBytes: 0 } });
      await waitFor('the thread to take over', () => checkpointer.active, { intervalMs: 10 });
      await checkpointer.thread!.terminate();
      const failure = await waitFor('the death to be logged', () => entries().find((entry) => /checkpoint thread stopped/.test(String(entry.msg))));
      expect(failure.level).toBe(50);
      expect(checkpointer.thread).toBeNull();
      expect(checkpointer.active).toBe(false);
      expectWriterCheckpoints();
    });
  });

  it('bounds the WAL under transactions that never pause, by the writer\'s own backstop', async () => {
    const database = openDatabase(file);
    const checkpointer = new WalCheckpointer(database.sqlite, { logger: captureLogger().logger, limits: { startWalBytes: 0, writerBackstopPages: 500 } });
    try {
      await waitFor('the thread to take over', () => checkpointer.active, { intervalMs: 10 });
      // 4,000 pages back to back: the WAL never starts over by itself, and the thread cannot make it.
      write(database.sqlite, 80, 50, () => checkpointer.committed());
      expect(walBytes()).toBeLessThan(1500 * (4096 + 24));
    } finally {
      await checkpointer.close();
      database.close();
    }
  });
});
