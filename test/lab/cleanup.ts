/**
 * Every process, network namespace, interface and directory the lab makes is registered
 * here, so that it is released in afterAll/afterEach, and also when the test process exits
 * or is interrupted while a test is failing. Release runs newest first (processes die before
 * their namespaces and directories go).
 */
export interface Resource {
  readonly label: string;
  /** Orderly release for afterAll/afterEach. */
  release(): Promise<void>;
  /** Last-resort release from an exit handler, where nothing asynchronous runs. */
  releaseSync(): void;
}

const live = new Set<Resource>();
let hooksInstalled = false;

function releaseEverythingSync(): void {
  for (const resource of [...live].reverse()) {
    live.delete(resource);
    try {
      resource.releaseSync();
    } catch {
      // Exit path: keep releasing the rest.
    }
  }
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once('exit', releaseEverythingSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      releaseEverythingSync();
      process.kill(process.pid, signal);
    });
  }
}

/** A group of resources released together (one per Lab, one per test if you like). */
export class ResourceScope {
  private readonly resources: Resource[] = [];

  add(resource: Resource): Resource {
    installExitHooks();
    this.resources.push(resource);
    live.add(resource);
    return resource;
  }

  /** Releases one resource early (e.g. a stopped controller); a no-op when already released. */
  async release(resource: Resource): Promise<void> {
    const index = this.resources.indexOf(resource);
    if (index < 0) return;
    this.resources.splice(index, 1);
    live.delete(resource);
    await resource.release();
  }

  /** Releases everything newest first; collects failures and throws them together at the end. */
  async releaseAll(): Promise<void> {
    const problems: string[] = [];
    while (this.resources.length > 0) {
      const resource = this.resources.pop()!;
      live.delete(resource);
      try {
        await resource.release();
      } catch (error) {
        problems.push(`${resource.label}: ${(error as Error).message}`);
      }
    }
    if (problems.length > 0) throw new Error(`lab cleanup failed:\n${problems.join('\n')}`);
  }

  get size(): number {
    return this.resources.length;
  }
}

export function liveResourceLabels(): string[] {
  return [...live].map((r) => r.label);
}
