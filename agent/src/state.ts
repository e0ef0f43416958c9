import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { ManifestRebootSettings } from '../../shared/src/reboot-settings.js';
import { Action, Phase, StorePath } from '../../shared/src/protocol.js';
import { writeFileAtomic } from './durable-file.js';

/**
 * What the agent must remember across restarts: whether it enrolled, the highest manifest
 * version and security floor it accepted (replay and rollback protection survive a restart),
 * the activation in flight (so a restart reconciles instead of guessing) and the last result
 * (so a renewal of the same system does not re-activate it).
 *
 * The watermark (highest version, its store path, highest floor) is kept twice: in state.json
 * and in watermark.json, written first. Losing state.json alone restores from the copy; losing
 * both on a host that was set up (its host key exists) is never taken for a first start: the
 * agent then refuses every manifest ('state-lost') until an operator runs `shoal-agent
 * rebootstrap`. A genuine first start writes both files before the host key is created.
 */

/**
 * 'rebooting': the new system is the boot default and the reboot was asked for; after it, the
 * health gate runs on the new system. 'rebooting-back': that gate failed, the previous system is
 * the boot default again and the host reboots into it, once (never a loop).
 */
export const ActivationStep = z.enum([
  'accepted',
  'realising',
  /** Realised, waiting for a maintenance window; nothing on the host changed yet. */
  'staged',
  /** Waiting for the controller's reboot grant; nothing on the host changed yet. */
  'awaiting-reboot-grant',
  'activating',
  'checking',
  'committing',
  'rolling-back',
  'rebooting',
  'rebooting-back',
]);
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
  /** Why the host reboots back to the previous system (step 'rebooting-back'): reported with rolled-back after it. */
  rollbackReason: z.string().optional(),
  /** The reboot settings the manifest carried (signed by the controller), for an activation resumed after a restart. */
  rebootSettings: ManifestRebootSettings.nullable().optional(),
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
  /** The highest release-statement floor accepted; statements below it are refused. (Absent in files from before floors.) */
  highestFloor: z.number().int().nonnegative().default(0),
  /** Both copies of the watermark were gone on a host that had been set up: refuse everything until a rebootstrap. */
  stateLost: z.boolean().default(false),
  activation: ActivationRecord.nullable(),
  lastResult: LastResult.nullable(),
});
export type AgentState = z.infer<typeof AgentState>;

export const Watermark = z.object({
  formatVersion: z.literal(1),
  highestVersion: z.number().int().nonnegative(),
  highestStorePath: StorePath.nullable(),
  highestFloor: z.number().int().nonnegative(),
});
export type Watermark = z.infer<typeof Watermark>;

export const INITIAL_STATE: AgentState = {
  formatVersion: 1,
  enrolled: false,
  highestVersion: 0,
  highestStorePath: null,
  highestFloor: 0,
  stateLost: false,
  activation: null,
  lastResult: null,
};

export const STATE_FILE = 'state.json';
export const WATERMARK_FILE = 'watermark.json';

/**
 * How the state came to be: read from state.json, made on a first start, restored from the
 * watermark copy after state.json was lost, or found lost altogether (blank-state refusal).
 */
export type StateOrigin = 'loaded' | 'first-start' | 'restored' | 'lost';

export class StateFileError extends Error {
  override readonly name = 'StateFileError';
}

function watermarkOf(state: AgentState): Watermark {
  return { formatVersion: 1, highestVersion: state.highestVersion, highestStorePath: state.highestStorePath, highestFloor: state.highestFloor };
}

function sameWatermark(a: Watermark | null, b: Watermark): boolean {
  return a !== null && a.highestVersion === b.highestVersion && a.highestStorePath === b.highestStorePath && a.highestFloor === b.highestFloor;
}

async function readJson<T>(file: string, schema: z.ZodType<T>, what: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new StateFileError(`${what} ${file} is not valid JSON (${(error as Error).message}); fix it, or run \`shoal-agent rebootstrap\` deliberately`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new StateFileError(`${what} ${file}: ${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

export interface OpenOptions {
  /** Whether this host was set up before (its host key exists): decides between a first start and lost state. */
  alreadySetUp: boolean;
}

export class StateStore {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    readonly watermarkFile: string,
    private state: AgentState,
    /** The watermark as last written (or read), so that only a change rewrites the copy. */
    private watermark: Watermark | null,
    readonly origin: StateOrigin,
  ) {}

  /**
   * A state file that exists but does not parse is an error, not a reset: silently starting
   * from version 0 would re-open the door to replayed manifests. A missing one is restored from
   * the watermark copy, is a first start, or is lost (see the module comment); every outcome
   * but `loaded` is written to disk before this returns.
   */
  static async open(stateDir: string, options: OpenOptions = { alreadySetUp: false }): Promise<StateStore> {
    const file = join(stateDir, STATE_FILE);
    const watermarkFile = join(stateDir, WATERMARK_FILE);
    const loaded = await readJson(file, AgentState, 'state file');
    if (loaded !== null) {
      const store = new StateStore(file, watermarkFile, loaded, null, 'loaded');
      if (!loaded.stateLost) await store.repairWatermark();
      return store;
    }
    const copy = await readJson(watermarkFile, Watermark, 'watermark file');
    if (copy !== null) {
      const restored: AgentState = { ...structuredClone(INITIAL_STATE), ...copy, enrolled: options.alreadySetUp };
      const store = new StateStore(file, watermarkFile, restored, copy, 'restored');
      await writeJson(file, restored);
      return store;
    }
    if (options.alreadySetUp) {
      // Enrolled as far as we can tell: the host key exists, and the agent must still connect to report the refusals.
      const lost: AgentState = { ...structuredClone(INITIAL_STATE), enrolled: true, stateLost: true };
      const store = new StateStore(file, watermarkFile, lost, null, 'lost');
      await writeJson(file, lost);
      return store;
    }
    const fresh = structuredClone(INITIAL_STATE);
    const store = new StateStore(file, watermarkFile, fresh, null, 'first-start');
    await store.writeWatermark(watermarkOf(fresh));
    await writeJson(file, fresh);
    return store;
  }

  /**
   * The operator's explicit way out of a lost (or deliberately discarded) state: a fresh state
   * whose highest accepted version is `minVersion` and floor `minFloor`. The agent must not be
   * running. Returns what was there before (null when nothing readable was), for the record.
   */
  static async rebootstrap(
    stateDir: string,
    options: { minVersion: number; minFloor: number; enrolled: boolean },
  ): Promise<{ previous: AgentState | null; state: AgentState }> {
    const file = join(stateDir, STATE_FILE);
    let previous: AgentState | null = null;
    try {
      previous = await readJson(file, AgentState, 'state file');
    } catch (error) {
      if (!(error instanceof StateFileError)) throw error;
    }
    const state: AgentState = {
      ...structuredClone(INITIAL_STATE),
      enrolled: previous?.enrolled ?? options.enrolled,
      highestVersion: options.minVersion,
      highestFloor: options.minFloor,
    };
    AgentState.parse(state);
    await writeJson(join(stateDir, WATERMARK_FILE), watermarkOf(state));
    await writeJson(file, state);
    return { previous, state };
  }

  get(): Readonly<AgentState> {
    return this.state;
  }

  /**
   * Applies a change and persists it before returning; the in-memory copy changes only once the
   * file did. A changed watermark is copied first, so the copy is never behind state.json.
   */
  update(change: (draft: AgentState) => void): Promise<AgentState> {
    // Serialised so that two updates never interleave their tmp-file-and-rename.
    const run = this.queue.then(async () => {
      const next = structuredClone(this.state);
      change(next);
      AgentState.parse(next);
      if (next.stateLost !== this.state.stateLost) throw new Error('stateLost changes only by rebootstrap');
      const watermark = watermarkOf(next);
      if (!next.stateLost && !sameWatermark(this.watermark, watermark)) await this.writeWatermark(watermark);
      await writeJson(this.file, next);
      this.state = next;
      return next;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Makes the copy catch up with state.json: missing (an upgrade from before it existed), behind or unreadable. */
  private async repairWatermark(): Promise<void> {
    const own = watermarkOf(this.state);
    let copy: Watermark | null = null;
    try {
      copy = await readJson(this.watermarkFile, Watermark, 'watermark file');
    } catch (error) {
      if (!(error instanceof StateFileError)) throw error;
    }
    // A copy ahead of state.json is a crash between the two writes; it stays, being the safer of the two.
    if (copy !== null && copy.highestVersion >= own.highestVersion && copy.highestFloor >= own.highestFloor) {
      this.watermark = copy;
      return;
    }
    await this.writeWatermark(own);
  }

  private async writeWatermark(watermark: Watermark): Promise<void> {
    await writeJson(this.watermarkFile, watermark);
    this.watermark = watermark;
  }
}
