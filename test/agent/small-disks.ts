import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { SmallDisk } from '../lab/small-disk.js';

/** Small real filesystems (tmpfs with a size limit) in fresh directories, unmounted after each test, passed or failed. */
export function useSmallDisks(tmpDir: () => Promise<string>): (bytes: number, at?: string) => Promise<SmallDisk> {
  const mounted: SmallDisk[] = [];
  afterEach(async () => {
    for (const disk of mounted.splice(0).reverse()) await disk.release();
  });
  return async (bytes, at) => {
    const dir = at ?? join(await tmpDir(), 'disk');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const disk = await SmallDisk.mount(dir, bytes);
    mounted.push(disk);
    return disk;
  };
}
