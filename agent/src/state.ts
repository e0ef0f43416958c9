import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { Action, Phase, StorePath } from '../../shared/src/protocol.js';
import { writeFileAtomic } from './durable-file.js';

/**
 * What the agent must remember across restarts: whether it enrolled, the highest manifest
 * version it accepted (replay protection survives a restart), the activation in flight (so a
 * restart reconciles instead of guessing) and the last result (so a renewal of the same
 * system does not re-activate it).
 */

export const ActivationStep = z.enum(['accepted', 'realising', 'activating', 'checking', 'committing', 'rolling-back']);
export type ActivationStep = z.infer<typeof ActivationStep>;

export const ActivationRecord = z.object({
  manifestVersion: z.number().int().positive(),
  target: StorePath,
  action: Action,
  previousSystem: StorePath.nullable(),
  step: ActivationStep,
  startedAt: z.string(),
  /** The last switch-to-configuration started without systemd-run (it leads its own process group). */
  switchProcess: z.object({ pid: z.number().int().positive(), startTicks: z.number(), bootId: z.string() }).nullable().optional(),
});
export type ActivationRecord = z.infer<typeof ActivationRecord>;

export const LastResult = z.object({
  manifestVersion: z.number().int().positive(),
  storePath: StorePath,
  phase: Phase,
  at: z.string(),
  reason: z.string().optional(),
});
export type LastResult = z.infer<typeof LastResult>;

export const AgentState = z.object({
  formatVersion: z.literal(1),
  enrolled: z.boolean(),
  highestVersion: z.number().int().nonnegative(),
  highestStorePath: StorePath.nullable(),
  activation: ActivationRecord.nullable(),
  lastResult: LastResult.nullable(),
});
export type AgentState = z.infer<typeof AgentState>;

export const INITIAL_STATE: AgentState = {
  formatVersion: 1,
  enrolled: false,
  highestVersion: 0,
  highestStorePath: null,
  activation: null,
  lastResult: null,
};

export class StateFileError extends Error {
  override readonly name = 'StateFileError';
}

export class StateStore {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private state: AgentState,
  ) {}

  /**
   * A missing file is a first start. A file that exists but does not parse is an error, not a
   * reset: silently starting from version 0 would re-open the door to replayed manifests.
   */
  static async open(stateDir: string): Promise<StateStore> {
    const file = join(stateDir, 'state.json');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new StateStore(file, structuredClone(INITIAL_STATE));
      throw error;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new StateFileError(`state file ${file} is not valid JSON (${(error as Error).message}); fix or remove it deliberately`);
    }
    const parsed = AgentState.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new StateFileError(`state file ${file}: ${issue.path.join('.')}: ${issue.message}`);
    }
    return new StateStore(file, parsed.data);
  }

  get(): Readonly<AgentState> {
    return this.state;
  }

  /** Applies a change and persists it before returning; the in-memory copy changes only once the file did. */
  update(change: (draft: AgentState) => void): Promise<AgentState> {
    // Serialised so that two updates never interleave their tmp-file-and-rename.
    const run = this.queue.then(async () => {
      const next = structuredClone(this.state);
      change(next);
      AgentState.parse(next);
      await writeFileAtomic(this.file, `${JSON.stringify(next, null, 2)}\n`);
      this.state = next;
      return next;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}
