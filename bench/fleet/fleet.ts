import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Cleanup } from '../lib/cleanup.js';
import { REPO_ROOT, spawnBundled } from '../lib/spawn.js';
import type { FleetTrust, WorkerCommand, WorkerReply } from './protocol.js';

class WorkerHandle {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  constructor(readonly child: ChildProcess) {
    child.on('message', (reply: WorkerReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new Error(`load generator ${child.pid}: ${reply.error}`));
    });
    child.once('exit', (code, signal) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`load generator ${child.pid} exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  call<T>(command: WorkerCommand): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, command });
    });
  }
}

/** N simulated agents spread over a few load-generator processes (separate from the controller and the benchmark). */
export class Fleet {
  private constructor(
    readonly workers: WorkerHandle[],
    readonly names: string[],
  ) {}

  /** urls: the controller replicas; host i talks to urls[i mod urls.length], as if the load balancer had sent it there. */
  static async start(options: { urls: readonly string[]; count: number; workers: number; trust: FleetTrust; prefix?: string; spreadSources?: boolean; cleanup: Cleanup }): Promise<Fleet> {
    if (options.urls.length === 0) throw new Error('Fleet.start: no controller URL');
    const names = Array.from({ length: options.count }, (_, i) => `${options.prefix ?? 'sim'}-${String(i).padStart(5, '0')}`);
    const urlOf = new Map(names.map((name, i) => [name, options.urls[i % options.urls.length]!]));
    const workers: WorkerHandle[] = [];
    for (let w = 0; w < options.workers; w++) {
      const child = await spawnBundled(join(REPO_ROOT, 'bench/fleet/main.ts'), [], options.cleanup, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(new WorkerHandle(child));
    }
    const fleet = new Fleet(workers, names);
    await Promise.all(
      workers.map((worker, w) => worker.call({ cmd: 'init', hosts: fleet.slice(w).map((name) => ({ name, url: urlOf.get(name)! })), trust: options.trust, spreadSources: options.spreadSources ?? false })),
    );
    return fleet;
  }

  /** The host names worker w simulates (round-robin). */
  slice(w: number): string[] {
    return this.names.filter((_, i) => i % this.workers.length === w);
  }

  all<T>(command: WorkerCommand): Promise<T[]> {
    return Promise.all(this.workers.map((worker) => worker.call<T>(command)));
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.workers.map((worker) => worker.call({ cmd: 'close' })));
  }
}
