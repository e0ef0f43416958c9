import { AsyncLocalStorage } from 'node:async_hooks';
import { AsyncLock } from './async-lock.js';
import type { Isolation, TransactionOptions } from './store.js';

/**
 * One level of an open transaction: the outermost transaction or a savepoint inside it. Found
 * through AsyncLocalStorage, so that code called from a transaction body (at any depth of awaits)
 * joins that transaction instead of starting another one: on SQLite a second top-level transaction
 * would wait for the writer lock its own caller holds, forever.
 */
interface Scope {
  readonly owner: object;
  readonly tx: unknown;
  readonly depth: number;
  /** The outermost transaction's: savepoints run inside it. */
  readonly isolation: Isolation;
  /** Savepoints directly inside this level run one at a time: two at once on one connection would nest by accident. */
  readonly children: AsyncLock;
  /** In-process effects (SQLite notifications) that happen only if the outermost transaction commits. */
  readonly afterCommit: (() => void)[];
  open: boolean;
}

const scopes = new AsyncLocalStorage<Scope>();
/**
 * Transaction and savepoint bodies still running, over every store of the process. On Node 20 an
 * enabled AsyncLocalStorage hooks the creation of every promise in the process, which cost a poll
 * (no transaction anywhere on its path) about 10 µs of CPU (bench/README.md, "SQLite back at its
 * pre-async figures"). So the storage is enabled only while some transaction body runs: `run`
 * enables it, and the last body to end disables it. Nothing outside a body needs the context: a
 * continuation that outlives its body finds no open scope either way.
 */
let openBodies = 0;

function runScope<T>(scope: Scope, body: () => Promise<T>): Promise<T> {
  openBodies += 1;
  let running: Promise<T>;
  try {
    running = scopes.run(scope, body);
  } catch (error) {
    closeScope(scope);
    throw error;
  }
  return running.finally(() => closeScope(scope));
}

function closeScope(scope: Scope): void {
  scope.open = false;
  openBodies -= 1;
  if (openBodies === 0) scopes.disable();
}

/** What an engine provides; runTransaction adds nesting and after-commit effects on top. */
export interface TransactionEngine<Tx> {
  /** The store: scopes of another store are not joined. */
  readonly owner: object;
  /** BEGIN at `isolation` (an engine with one writer may give more), `body`, COMMIT (ROLLBACK on a throw); may call `body` again after a conflict. */
  top<T>(body: (tx: Tx) => Promise<T>, isolation: Isolation): Promise<T>;
  /** A savepoint named `name` on `tx` around `body`: released on success, rolled back to on a throw. */
  savepoint<T>(tx: Tx, name: string, body: () => Promise<T>): Promise<T>;
}

function newScope(owner: object, tx: unknown, depth: number, isolation: Isolation): Scope {
  return { owner, tx, depth, isolation, children: new AsyncLock(), afterCommit: [], open: true };
}

function current(owner: object): Scope | undefined {
  const scope = scopes.getStore();
  // A timer started inside a body inherits its context but runs after the body ended: not nested then.
  return scope && scope.owner === owner && scope.open ? scope : undefined;
}

/**
 * Runs `fn` as a transaction of `engine`'s store. Called inside a transaction body of the same
 * store, it is a savepoint of that transaction instead: a throw undoes only the savepoint's writes
 * and propagates (the caller may catch it and go on), and its writes commit or roll back with the
 * enclosing transaction.
 */
export async function runTransaction<Tx, T>(engine: TransactionEngine<Tx>, fn: (tx: Tx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  const isolation = options.isolation ?? 'serializable';
  const outer = current(engine.owner);
  if (outer) {
    // A body written for serial execution would silently lose that guarantee inside a weaker transaction.
    if (isolation === 'serializable' && outer.isolation !== 'serializable') {
      throw new Error(`a serializable transaction cannot run inside a ${outer.isolation} one: start it outside, or make the outer one serializable`);
    }
    return nested(engine, outer, fn);
  }
  let committed: Scope | undefined;
  const result = await engine.top(async (tx) => {
    // A fresh scope per attempt: effects queued by an attempt that was rolled back are dropped with it.
    const scope = newScope(engine.owner, tx, 0, isolation);
    committed = scope;
    return runScope(scope, () => fn(tx));
  }, isolation);
  for (const effect of committed!.afterCommit) effect();
  return result;
}

function nested<Tx, T>(engine: TransactionEngine<Tx>, outer: Scope, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return outer.children.run(async () => {
    if (!outer.open) throw new Error('the enclosing transaction has already finished');
    const tx = outer.tx as Tx;
    const scope = newScope(engine.owner, tx, outer.depth + 1, outer.isolation);
    const result = await engine.savepoint(tx, `shoal_sp${scope.depth}`, () => runScope(scope, () => fn(tx)));
    outer.afterCommit.push(...scope.afterCommit);
    return result;
  });
}

/** Queues `effect` to run after the enclosing transaction of `owner` commits; false if there is none. */
export function afterCommit(owner: object, effect: () => void): boolean {
  const scope = current(owner);
  if (!scope) return false;
  scope.afterCommit.push(effect);
  return true;
}

/** The drizzle handle of the transaction of `owner` the caller runs in, if any. */
export function currentTx(owner: object): unknown {
  return current(owner)?.tx;
}

/** Runs `fn` (which may schedule work) outside any transaction: what it schedules does not join the caller's. */
export function outsideTransactions<T>(fn: () => T): T {
  return scopes.exit(fn);
}
