import { nodeEd25519, type Ed25519 } from '../../../shared/src/ed25519.js';
import type { NamedPublicKey } from '../../../shared/src/keys.js';
import { silentLogger, type Logger } from '../../../shared/src/logger.js';
import { narinfoFile, parseNarinfo, type Narinfo } from './narinfo.js';
import { Semaphore } from './semaphore.js';
import { verifyNarinfo } from './signatures.js';

/** One binary cache the controller reads, with the keys whose signatures it accepts from it. */
export interface CacheSource {
  url: string;
  publicKeys: NamedPublicKey[];
}

/**
 * What the configured caches say about one store path.
 *  trusted    a narinfo signed by a configured key: the only lookup whose narinfo may be relied on
 *  untrusted  a narinfo, but unsigned, signed by another key, or with a signature that does not verify
 *  missing    every cache answered 404
 *  error      a cache could not be read (timeout, HTTP error, a malformed narinfo) and none had it
 */
export type PathLookup =
  | { state: 'trusted'; narinfo: Narinfo; cache: string; keyId: string }
  | { state: 'untrusted'; narinfo: Narinfo; cache: string; reason: 'unsigned' | 'untrusted-key' | 'bad-signature'; keyIds: string[] }
  | { state: 'missing' }
  | { state: 'error'; detail: string };

export interface ReaderOptions {
  caches: readonly CacheSource[];
  /** Requests in flight at once, over all caches. */
  concurrency: number;
  timeoutMs: number;
  fetch?: typeof fetch;
  ed25519?: Ed25519;
  logger?: Logger;
  /** Trusted narinfos kept (they never change for a store path); the oldest half goes when full. */
  maxCached?: number;
}

const MAX_NARINFO_BYTES = 1024 * 1024;

/** The body as text, or null once it passes `limit` bytes (read no further: a cache cannot make us buffer gigabytes). */
async function readBounded(response: Response, limit: number): Promise<string | null> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
const UNTRUSTED_ORDER = { 'bad-signature': 3, 'untrusted-key': 2, unsigned: 1 } as const;

/**
 * Reads narinfos over Nix's HTTP binary-cache protocol: a bounded number of requests at once,
 * each with a timeout, one request per path however many closures share it, and trusted
 * narinfos remembered for good (a store path's narinfo is immutable). Misses and errors are not
 * remembered: a path pushed a minute later is found on the next look.
 */
export class BinaryCacheReader {
  private readonly known = new Map<string, PathLookup & { state: 'trusted' }>();
  private readonly inFlight = new Map<string, Promise<PathLookup>>();
  private readonly storeDirChecks = new Map<string, Promise<string | null>>();
  private readonly semaphore: Semaphore;
  private readonly fetchImpl: typeof fetch;
  private readonly ed25519: Ed25519;
  private readonly logger: Logger;
  private readonly maxCached: number;
  /** Requests sent (for the bench and tests: shared paths are fetched once). */
  requests = 0;

  constructor(private readonly options: ReaderOptions) {
    this.semaphore = new Semaphore(options.concurrency);
    this.fetchImpl = options.fetch ?? fetch;
    this.ed25519 = options.ed25519 ?? nodeEd25519;
    this.logger = options.logger ?? silentLogger();
    this.maxCached = options.maxCached ?? 500_000;
  }

  get configured(): boolean {
    return this.options.caches.length > 0;
  }

  lookup(storePath: string): Promise<PathLookup> {
    const known = this.known.get(storePath);
    if (known) return Promise.resolve(known);
    let pending = this.inFlight.get(storePath);
    if (!pending) {
      pending = this.lookupUncached(storePath).finally(() => this.inFlight.delete(storePath));
      this.inFlight.set(storePath, pending);
    }
    return pending;
  }

  private async lookupUncached(storePath: string): Promise<PathLookup> {
    let best: PathLookup = { state: 'missing' };
    const errors: string[] = [];
    for (const cache of this.options.caches) {
      const answer = await this.fromCache(cache, storePath);
      if (answer.state === 'trusted') {
        if (this.known.size >= this.maxCached) {
          let drop = Math.floor(this.maxCached / 2);
          for (const key of this.known.keys()) {
            if (drop-- <= 0) break;
            this.known.delete(key);
          }
        }
        this.known.set(storePath, answer);
        return answer;
      }
      if (answer.state === 'error') errors.push(answer.detail);
      else if (answer.state === 'untrusted' && (best.state !== 'untrusted' || UNTRUSTED_ORDER[answer.reason] > UNTRUSTED_ORDER[best.reason])) best = answer;
    }
    if (best.state === 'missing' && errors.length > 0) return { state: 'error', detail: errors.join('; ') };
    return best;
  }

  private async fromCache(cache: CacheSource, storePath: string): Promise<PathLookup> {
    const storeDirProblem = await this.checkStoreDir(cache);
    if (storeDirProblem) return { state: 'error', detail: storeDirProblem };
    const url = `${cache.url.replace(/\/+$/, '')}/${narinfoFile(storePath)}`;
    const got = await this.get(url);
    if (got.status === 404 || got.status === 403) return { state: 'missing' };
    if (got.status !== 200 || got.text === null) return { state: 'error', detail: `${url}: ${got.problem ?? `HTTP ${got.status}`}` };
    const parsed = parseNarinfo(got.text, storePath);
    if (!parsed.ok) return { state: 'error', detail: `${url}: ${parsed.problem}` };
    const verdict = verifyNarinfo(parsed.narinfo, cache.publicKeys, this.ed25519);
    if (verdict.trusted) return { state: 'trusted', narinfo: parsed.narinfo, cache: cache.url, keyId: verdict.keyId };
    if (verdict.reason === 'bad-signature') {
      this.logger.warn({ storePath, cache: cache.url, keyIds: verdict.keyIds }, 'narinfo signature does not verify under the trusted key it names: refused');
    }
    return { state: 'untrusted', narinfo: parsed.narinfo, cache: cache.url, reason: verdict.reason, keyIds: verdict.keyIds };
  }

  /** A cache for another store directory holds paths no host here can use; checked once per cache. */
  private checkStoreDir(cache: CacheSource): Promise<string | null> {
    let check = this.storeDirChecks.get(cache.url);
    if (!check) {
      const url = `${cache.url.replace(/\/+$/, '')}/nix-cache-info`;
      check = this.get(url).then((got) => {
        if (got.status === 404) return null;
        if (got.status !== 200 || got.text === null) {
          // Not remembered: the cache may be back on the next look.
          this.storeDirChecks.delete(cache.url);
          return `${url}: ${got.problem ?? `HTTP ${got.status}`}`;
        }
        const storeDir = /^StoreDir: (.*)$/m.exec(got.text)?.[1]?.trim();
        return storeDir && storeDir !== '/nix/store' ? `${cache.url} serves store directory ${storeDir}, not /nix/store` : null;
      });
      this.storeDirChecks.set(cache.url, check);
    }
    return check;
  }

  private get(url: string): Promise<{ status: number; text: string | null; problem?: string }> {
    return this.semaphore.run(async () => {
      this.requests += 1;
      try {
        const response = await this.fetchImpl(url, { signal: AbortSignal.timeout(this.options.timeoutMs), redirect: 'follow' });
        if (response.status !== 200) {
          await response.body?.cancel();
          return { status: response.status, text: null };
        }
        const text = await readBounded(response, MAX_NARINFO_BYTES);
        if (text === null) return { status: 200, text: null, problem: `answer larger than ${MAX_NARINFO_BYTES} bytes` };
        return { status: 200, text };
      } catch (error) {
        const err = error as Error & { cause?: { code?: string } };
        const problem = err.name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : (err.cause?.code ?? err.message);
        return { status: 0, text: null, problem };
      }
    });
  }
}
