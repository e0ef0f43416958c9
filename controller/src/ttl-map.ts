import type { Clock } from './clock.js';

/**
 * An in-memory map whose entries expire: agent challenges, agent sessions, dashboard sessions.
 * An expired entry is never returned; it is forgotten when it is next looked up or swept.
 * `onForget` sees every entry that leaves, however it leaves (taken, deleted, expired, evicted),
 * so a caller can release what the entry holds (an admission slot).
 */
export class TtlMap<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly onForget: (key: K, value: V) => void = () => {},
  ) {}

  /** Stores `value` for the map's TTL; returns when it expires. */
  set(key: K, value: V): number {
    const expiresAt = this.clock.now() + this.ttlMs;
    this.delete(key);
    this.entries.set(key, { value, expiresAt });
    return expiresAt;
  }

  /** The live value, or undefined (an expired entry is forgotten here). */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.clock.now()) {
      this.forget(key, entry.value);
      return undefined;
    }
    return entry.value;
  }

  /** Removes the entry whatever its state and says whether it had expired: single-use values. */
  take(key: K): { value: V; expired: boolean } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.forget(key, entry.value);
    return { value: entry.value, expired: entry.expiresAt <= this.clock.now() };
  }

  delete(key: K): void {
    const entry = this.entries.get(key);
    if (entry) this.forget(key, entry.value);
  }

  deleteWhere(matches: (value: V, key: K) => boolean): void {
    for (const [key, entry] of this.entries) if (matches(entry.value, key)) this.forget(key, entry.value);
  }

  /** Forgets the entry stored longest ago (to make room under a cap). */
  deleteOldest(): void {
    const oldest = this.entries.keys().next();
    if (!oldest.done) this.delete(oldest.value);
  }

  /**
   * Forgets expired entries. Amortised O(1): all entries share one TTL, so insertion order is
   * expiry order and the sweep stops at the first live entry. (If the wall clock stepped back, a
   * later entry may outlive an earlier one; it is then swept a little late.)
   */
  sweepExpired(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) return;
      this.forget(key, entry.value);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  private forget(key: K, value: V): void {
    this.entries.delete(key);
    this.onForget(key, value);
  }
}
