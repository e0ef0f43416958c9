import { stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/src/logger.js';
import { writeFileAtomic } from './durable-file.js';

/**
 * Room in the state directory. Everything the agent must remember (state, watermark, reports)
 * is written there before it acts, so an activation starts only when there is room to record
 * it, and a small reserve file is kept that the agent deletes to say "my disk is full" when
 * nothing else fits. The reserve is made again once space is back; that is also how the agent
 * notices it can go on.
 */

export const RESERVE_FILE = 'space-reserve';
/** Room for a few reports and state writes (tmpfs and ext4 both count in 4 KiB pages). */
export const RESERVE_BYTES = 128 * 1024;
/** Free space, besides the reserve, that an activation needs to start: ~10 state writes and reports, with the controller away. */
export const ACTIVATION_MIN_FREE_BYTES = 256 * 1024;

/** An error that means the filesystem has no room (or the quota is used up). */
export function isNoSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export type SpaceCheck = { ok: true } | { ok: false; reason: string };

export class StateDirSpace {
  readonly reserveFile: string;

  constructor(
    readonly stateDir: string,
    private readonly logger: Logger,
    private readonly limits: { reserveBytes: number; minFreeBytes: number } = { reserveBytes: RESERVE_BYTES, minFreeBytes: ACTIVATION_MIN_FREE_BYTES },
  ) {
    this.reserveFile = join(stateDir, RESERVE_FILE);
  }

  /** Makes the reserve if it is missing; false when there is no room for it (the disk is still full). */
  async ensureReserve(): Promise<boolean> {
    try {
      if ((await stat(this.reserveFile)).size === this.limits.reserveBytes) return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    try {
      // Real bytes, not a sparse file: the space must be taken now to be there later.
      await writeFileAtomic(this.reserveFile, Buffer.alloc(this.limits.reserveBytes, 0x52));
      return true;
    } catch (error) {
      if (isNoSpace(error)) return false;
      throw error;
    }
  }

  /** Deletes the reserve so that what must be written now fits; true when it was there. */
  async release(): Promise<boolean> {
    try {
      await unlink(this.reserveFile);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
    this.logger.warn({ file: this.reserveFile, bytes: this.limits.reserveBytes }, 'state directory is full: freed the space reserve to record that');
    return true;
  }

  /** Whether an activation may start: the reserve is in place and enough is free besides it. */
  async check(): Promise<SpaceCheck> {
    const reserved = await this.ensureReserve();
    const info = await statfs(this.stateDir);
    const free = info.bavail * info.bsize;
    if (reserved && free >= this.limits.minFreeBytes) return { ok: true };
    return {
      ok: false,
      reason:
        `the state directory ${this.stateDir} is full (${free} bytes free; an activation needs ${this.limits.minFreeBytes} ` +
        `plus a ${this.limits.reserveBytes}-byte reserve to record its progress): not activating until there is room`,
    };
  }
}

/**
 * While the agent waits for room (a manifest held back, or the reserve used up), checks every
 * interval whether there is room again and then calls `onRoom` once.
 */
export class SpaceWatch {
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private readonly deps: {
      space: StateDirSpace;
      intervalMs: number;
      /** Whether anything waits for room (a held manifest). */
      waiting: () => boolean;
      onRoom: () => void;
      logger: Logger;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.deps.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const hadReserve = await reserveExists(this.deps.space.reserveFile);
      if (hadReserve && !this.deps.waiting()) return;
      const check = await this.deps.space.check();
      if (!check.ok) return;
      this.deps.logger.info({ stateDir: this.deps.space.stateDir }, 'state directory has room again');
      this.deps.onRoom();
    } catch (error) {
      this.deps.logger.error({ err: error }, 'checking the room in the state directory failed');
    } finally {
      this.checking = false;
    }
  }
}

async function reserveExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
