import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

/** Something else a benchmark started (a database server): released after the children, before the directories. */
export interface CleanupResource {
  release(): Promise<void>;
  /** Last resort from an exit or signal handler, where nothing asynchronous runs. */
  releaseSync(): void;
}

/**
 * Everything a benchmark started: child processes, other resources and temporary directories.
 * Released on normal end, on an exception, and (synchronously) when the process is interrupted or exits.
 */
export class Cleanup {
  private readonly children = new Set<ChildProcess>();
  private readonly resources = new Set<CleanupResource>();
  private readonly dirs = new Set<string>();
  private readonly onExit = () => this.releaseSync();
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.releaseSync();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  constructor() {
    process.on('exit', this.onExit);
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('SIGHUP', this.onSignal);
  }

  child<T extends ChildProcess>(child: T): T {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  resource<T extends CleanupResource>(resource: T): T {
    this.resources.add(resource);
    return resource;
  }

  /** Releases one resource early (a run's database server when the run ends). */
  async releaseResource(resource: CleanupResource): Promise<void> {
    if (!this.resources.delete(resource)) return;
    await resource.release();
  }

  dir(path: string): string {
    this.dirs.add(path);
    return path;
  }

  /** Asks children to stop (SIGTERM), kills whoever is left after graceMs, releases the resources, then removes the directories. */
  async release(graceMs = 5000): Promise<void> {
    const waits = [...this.children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    );
    await Promise.all(waits);
    // Newest first: a resource may depend on an older one; the children that used them are gone.
    for (const resource of [...this.resources].reverse()) {
      this.resources.delete(resource);
      await resource.release().catch(() => resource.releaseSync());
    }
    this.releaseSync();
  }

  releaseSync(): void {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.children.clear();
    for (const resource of [...this.resources].reverse()) {
      try {
        resource.releaseSync();
      } catch {
        // Exit path: keep releasing the rest.
      }
    }
    this.resources.clear();
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
    this.dirs.clear();
  }

  dispose(): void {
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGHUP', this.onSignal);
  }
}
