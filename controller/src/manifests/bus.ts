import type { Envelope } from '../../../shared/src/envelope.js';

export interface PublishedManifest {
  host: string;
  version: number;
  envelope: Envelope;
  /** The envelope as JSON text, as stored: spliced into the websocket message instead of serialising `envelope` again. */
  envelopeJson: string;
}

type Listener = (manifest: PublishedManifest) => void;

/**
 * Announces committed manifests to whoever holds a connection open for them: the websocket hub
 * (one listener for all hosts) and long-polling requests (waiters keyed by host).
 */
export class ManifestBus {
  private readonly listeners = new Set<Listener>();
  private readonly waiters = new Map<string, Set<(manifest: PublishedManifest | null) => void>>();

  onPublish(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(manifest: PublishedManifest): void {
    for (const listener of this.listeners) listener(manifest);
    const waiting = this.waiters.get(manifest.host);
    if (waiting) {
      this.waiters.delete(manifest.host);
      for (const wake of waiting) wake(manifest);
    }
  }

  /** Resolves with the next manifest published for host, or null after timeoutMs, on abort, or at shutdown. */
  waitFor(host: string, timeoutMs: number, signal?: AbortSignal): Promise<PublishedManifest | null> {
    return new Promise((resolve) => {
      let set = this.waiters.get(host);
      if (!set) {
        set = new Set();
        this.waiters.set(host, set);
      }
      const waiting = set;
      const finish = (manifest: PublishedManifest | null) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        waiting.delete(finish);
        if (waiting.size === 0 && this.waiters.get(host) === waiting) this.waiters.delete(host);
        resolve(manifest);
      };
      const onAbort = () => finish(null);
      const timer = setTimeout(() => finish(null), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      waiting.add(finish);
    });
  }

  /** Hosts with a long-poll waiting here. */
  waitingHosts(): string[] {
    return [...this.waiters.keys()];
  }

  hasWaiter(host: string): boolean {
    return this.waiters.has(host);
  }

  waiterCount(): number {
    let count = 0;
    for (const set of this.waiters.values()) count += set.size;
    return count;
  }

  /** Releases every long-poll (controller shutting down). */
  releaseAll(): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) for (const wake of set) wake(null);
  }
}
