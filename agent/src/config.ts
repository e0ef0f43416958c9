import { hostname } from 'node:os';
import * as z from 'zod';
import { parsePublicKey, type NamedPublicKey } from '../../shared/src/keys.js';
import { Action, HostName } from '../../shared/src/protocol.js';
import { RebootPolicy } from '../../shared/src/reboot.js';
import { MaintenanceWindow } from '../../shared/src/windows.js';
import { readJsonConfig } from '../../shared/src/config-file.js';
import { substituterProblem } from './substituters.js';

/**
 * The agent's configuration: one schema, units in names, validated once at start. The same
 * schema backs `check-config`, which the NixOS module runs at build time, so a typo fails the
 * build instead of the host.
 */

const AutoOrBool = z.union([z.literal('auto'), z.boolean()]);

const NixKey = z.string().superRefine((value, ctx) => {
  try {
    parsePublicKey(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
});

const HealthCheckInput = z
  .strictObject({
    name: z.string().min(1).max(100),
    command: z.array(z.string()).min(1, 'must name the program to run').optional(),
    url: z.url({ protocol: /^https?$/ }).optional(),
    expectStatus: z.number().int().min(100).max(599).optional(),
    timeoutMs: z.number().int().positive().optional(),
  })
  .superRefine((check, ctx) => {
    if ((check.command === undefined) === (check.url === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'must have exactly one of "command" or "url"' });
    }
    if (check.command !== undefined && check.expectStatus !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['expectStatus'], message: 'only applies to "url" checks' });
    }
  });

export type HealthCheck =
  | { kind: 'command'; name: string; command: string[]; timeoutMs: number }
  | { kind: 'http'; name: string; url: string; expectStatus: number; timeoutMs: number };

const HealthCheck = HealthCheckInput.transform((check): HealthCheck => {
  if (check.command) {
    return { kind: 'command', name: check.name, command: check.command, timeoutMs: check.timeoutMs ?? 10_000 };
  }
  return {
    kind: 'http',
    name: check.name,
    url: check.url!,
    expectStatus: check.expectStatus ?? 200,
    timeoutMs: check.timeoutMs ?? 5_000,
  };
});

const Substituter = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    const problem = substituterProblem(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
  });

/** Key names identify keys in signatures; two keys with one name would make rotation ambiguous. */
function checkKeyNames(keys: readonly string[], field: string, ctx: z.RefinementCtx): void {
  const ids = keys.map((k) => k.slice(0, k.indexOf(':')));
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate) ctx.addIssue({ code: 'custom', path: [field], message: `key name "${duplicate}" appears twice` });
}

export const DEFAULT_STATE_DIR = '/var/lib/shoal-agent';

const AbsolutePath = z.string().refine((p) => p.startsWith('/'), { message: 'must be an absolute path' });
const PathInSystem = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), { message: 'must be a path inside the system top level, without ".." (e.g. etc/shoal/agent.json)' });

const ControllerUrl = z.url({ protocol: /^https?$/ });

export const AgentConfig = z
  .strictObject({
    host: HostName,
    controllerUrl: ControllerUrl.optional(),
    /** More controllers (replicas of one controller, issue 16): when the one in use cannot be reached, the agent moves to the next. */
    controllerUrls: z.array(ControllerUrl).default([]),
    /** CI's keys: a release statement must be signed by one of them ("this host may run this system"). */
    trustedReleaseKeys: z.array(NixKey).min(1, 'must contain at least one key'),
    /** The controller's keys: an assignment must be signed by one of them ("this host, this system, now"). */
    trustedControllerKeys: z.array(NixKey).min(1, 'must contain at least one key'),
    /** How far in the future an assignment's issuedAt may be, for clocks that drift apart. */
    maxClockSkewMs: z.number().int().nonnegative().default(300_000),
    /** The longest validity (expiresAt - issuedAt) an assignment may claim; a longer-lived one is a replay waiting to happen. */
    maxManifestLifetimeMs: z.number().int().positive().default(604_800_000),
    stateDir: AbsolutePath.default(DEFAULT_STATE_DIR),
    enrollmentTokenFile: AbsolutePath.nullable().default(null),
    substituters: z.array(Substituter).default([]),
    trustedPublicKeys: z.array(NixKey).default([]),
    /** Between polls when longPollSeconds is 0; otherwise only the pause after a failed poll. */
    pollIntervalMs: z.number().int().min(100).default(30_000),
    /**
     * How long the controller may hold each poll (a long-poll: a change arrives within about a
     * second without a websocket). 0: plain polls every pollIntervalMs. At most 60, the controller's limit.
     */
    longPollSeconds: z.number().int().min(0).max(60).default(25),
    websocket: z.boolean().default(true),
    action: Action.nullable().default(null),
    healthChecks: z.array(HealthCheck).default([]),
    healthDeadlineMs: z.number().int().positive().default(60_000),
    /** While the state directory is full (a manifest held back), how often the agent looks whether there is room again. */
    spaceCheckIntervalMs: z.number().int().min(100).default(30_000),
    /**
     * After a healthy activation, run the health checks again this often and report when they
     * start failing (`degraded`) or pass again (`recovered`); a rollout's bake counts a degraded
     * host as failed. null or 0: off.
     */
    healthMonitorIntervalMs: z
      .number()
      .int()
      .nonnegative()
      .refine((ms) => ms === 0 || ms >= 100, { message: 'must be 0 (off) or at least 100' })
      .nullable()
      .default(60_000),
    checkSystemdUnits: AutoOrBool.default('auto'),
    useSystemdRun: AutoOrBool.default('auto'),
    timeouts: z
      .strictObject({
        realiseMs: z.number().int().positive().default(1_800_000),
        switchMs: z.number().int().positive().default(600_000),
        commandMs: z.number().int().positive().default(60_000),
      })
      .prefault({}),
    paths: z
      .strictObject({
        profile: AbsolutePath.default('/nix/var/nix/profiles/system'),
        currentSystem: AbsolutePath.default('/run/current-system'),
        bootedSystem: AbsolutePath.default('/run/booted-system'),
      })
      .prefault({}),
    /**
     * After a committed switch, the agent restarts itself when the new system provides another
     * configuration or package than it runs with (see self-update.ts); null turns a comparison off.
     */
    selfRestart: z
      .strictObject({
        configInSystem: PathInSystem.nullable().default('etc/shoal/agent.json'),
        executableInSystem: PathInSystem.nullable().default('sw/bin/shoal-agent'),
      })
      .prefault({}),
    /**
     * Reboots. policy: `never` sets the boot default and reports `pending-reboot`; `when-needed`
     * reboots when kernel, initrd or kernel modules differ from the booted system or a live switch
     * is refused (switch inhibitors differ); `always` reboots for every new system. command: how to
     * reboot. blessCommand: run after the post-reboot health gate passed, to mark the boot good
     * for systemd-boot's boot counting (e.g. ["systemctl", "start", "systemd-bless-boot.service"]).
     * policy unset: the one set on the controller for this host or its tags (signed into each
     * manifest), else never; set here, it wins over the controller's (a host that decides locally).
     */
    reboot: z
      .strictObject({
        policy: RebootPolicy.optional(),
        command: z.array(z.string()).min(1, 'must name the program to run').default(['systemctl', 'reboot']),
        blessCommand: z.array(z.string()).min(1, 'must name the program to run').nullable().default(null),
        /** Reboot without the controller's grant when it cannot be reached (a host that must decide locally); otherwise wait for it. */
        withoutController: z.boolean().default(false),
      })
      .prefault({}),
    /**
     * Maintenance windows: a new system that needs a reboot (or any new system, with
     * windowsApplyTo "all") is realised at once but activated only while a window is open; until
     * then the host reports `staged`. Empty: always open. Unset: the windows set on the controller
     * for this host or its tags (signed into each manifest), else always open; set here, they win.
     */
    maintenanceWindows: z.array(MaintenanceWindow).optional(),
    windowsApplyTo: z.enum(['reboots', 'all']).default('reboots'),
    /** A node-exporter textfile (e.g. /var/lib/prometheus-node-exporter/shoal.prom), rewritten every 15 s; null: none. */
    metricsTextfile: AbsolutePath.nullable().default(null),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((config, ctx) => {
    if (config.controllerUrl === undefined && config.controllerUrls.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['controllerUrl'], message: 'is required: the controller\'s URL (or controllerUrls, several controllers to fail over between)' });
    }
    checkKeyNames(config.trustedReleaseKeys, 'trustedReleaseKeys', ctx);
    checkKeyNames(config.trustedControllerKeys, 'trustedControllerKeys', ctx);
  });
export type AgentConfig = z.infer<typeof AgentConfig>;

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; message: string };

/** "config FILE: a.b: message; c: message" — each problem names the field it is about. */
export function formatConfigIssues(source: string, issues: readonly z.core.$ZodIssue[]): string {
  const parts = issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => `${path ? `${path}.` : ''}${key}: unknown field`).join('; ');
    }
    return `${path || '(top level)'}: ${issue.message.replace(/^Invalid input: /, '')}`;
  });
  return `config ${source}: ${parts.join('; ')}`;
}

/** Overrides from the command line replace whole fields of the file, before validation. */
export type ConfigOverrides = Record<string, unknown>;

export function parseConfig(raw: unknown, source: string, overrides: ConfigOverrides = {}): ConfigResult {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, message: `config ${source}: must be a JSON object` };
  }
  const merged: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (key.includes('.')) {
      const [outer, inner] = key.split('.', 2) as [string, string];
      const existing = merged[outer];
      merged[outer] = { ...(typeof existing === 'object' && existing !== null ? existing : {}), [inner]: value };
    } else {
      merged[key] = value;
    }
  }
  if (merged.host === undefined) merged.host = hostname();
  const result = AgentConfig.safeParse(merged);
  if (!result.success) return { ok: false, message: formatConfigIssues(source, result.error.issues) };
  return { ok: true, config: result.data };
}

export async function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}): Promise<ConfigResult> {
  if (file === undefined) return parseConfig({}, '(command line)', overrides);
  const read = await readJsonConfig(file);
  if (!read.ok) return read;
  return parseConfig(read.raw, file, overrides);
}

export function trustedReleaseKeys(config: AgentConfig): NamedPublicKey[] {
  return config.trustedReleaseKeys.map(parsePublicKey);
}

export function trustedControllerKeys(config: AgentConfig): NamedPublicKey[] {
  return config.trustedControllerKeys.map(parsePublicKey);
}
