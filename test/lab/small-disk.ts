import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, open, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Resource } from './cleanup.js';
import { run } from './run.js';

/**
 * A real small filesystem (tmpfs with a size limit) mounted over a directory, so that a test
 * can fill it up and give the space back: ENOSPC as a full disk gives it, not a simulation.
 * Mount it before the agent starts (a lab host takes a copy of the machine's mounts when its
 * namespace is made); filling and freeing from the machine's side is seen inside the host,
 * it is the same filesystem. Needs root.
 */
export class SmallDisk implements Resource {
  readonly label: string;
  private mounted = true;
  private readonly filler: string;

  private constructor(readonly dir: string) {
    this.label = `tmpfs ${dir}`;
    this.filler = join(dir, '.test-filler');
  }

  /**
   * Mounts a tmpfs of `bytes` over `dir` (which must exist); what was in `dir` is copied onto it
   * first, so a state directory keeps its files. Register the result for cleanup at once.
   */
  static async mount(dir: string, bytes: number): Promise<SmallDisk> {
    const saved = await mkdtemp(`${dir}.saved-`);
    await run('/bin/cp', ['-a', `${dir}/.`, saved]);
    const mounted = await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir]);
    if (mounted.exitCode !== 0) {
      await rm(saved, { recursive: true, force: true });
      throw new Error(`cannot mount a tmpfs over ${dir}: ${mounted.stderr.trim()}`);
    }
    const disk = new SmallDisk(dir);
    await run('/bin/cp', ['-a', `${saved}/.`, dir]);
    await rm(saved, { recursive: true, force: true });
    return disk;
  }

  async freeBytes(): Promise<number> {
    const info = await statfs(this.dir);
    return info.bavail * info.bsize;
  }

  /** Fills the disk until the kernel says ENOSPC, then gives back `leaveBytes` (e.g. one 4096-byte page). */
  async fill(leaveBytes = 0): Promise<void> {
    const tmp = `${this.filler}.tmp`;
    const handle = await open(tmp, 'w', 0o600);
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    let written = 0;
    try {
      for (;;) {
        const { bytesWritten } = await handle.write(chunk, 0, chunk.length);
        written += bytesWritten;
        if (bytesWritten < chunk.length) break;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    }
    // Page by page: the last chunk may have failed as a whole with space for a few pages left.
    const page = Buffer.alloc(4096, 0x5a);
    try {
      for (;;) {
        await handle.write(page, 0, page.length);
        written += page.length;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    }
    if (leaveBytes > 0) await handle.truncate(Math.max(0, written - leaveBytes));
    await handle.close();
    await rename(tmp, this.filler);
  }

  /** Gives all the space taken by fill() back. */
  async free(): Promise<void> {
    await rm(this.filler, { force: true });
    await rm(`${this.filler}.tmp`, { force: true });
  }

  /** What is on the disk now (without the filler): for failure messages. */
  listing(): string[] {
    return readdirSync(this.dir, { recursive: true }).map(String).filter((n) => !n.startsWith('.test-filler'));
  }

  async release(): Promise<void> {
    if (!this.mounted) return;
    this.mounted = false;
    // Lazy: a process of the test that still has a file open there must not keep it mounted.
    await run('umount', ['-l', this.dir]);
  }

  releaseSync(): void {
    if (!this.mounted) return;
    this.mounted = false;
    spawnSync('umount', ['-l', this.dir]);
  }
}
