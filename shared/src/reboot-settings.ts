import * as z from 'zod';
import { RebootPolicy } from './reboot.js';
import { MaintenanceWindow } from './windows.js';

/**
 * Reboot policy and maintenance windows set on the controller, per host or per tag, and what of
 * them the controller signs into a host's manifest. How they combine (controller side):
 *
 * - A host's own setting overrides its tags' (field by field: policy, windows).
 * - Tags disagreeing resolve to the most restrictive: the lowest policy of never < when-needed <
 *   always, and every tag's windows at once (the host activates only while a window of each tag
 *   that sets windows is open).
 * - Nothing set anywhere: null, and the agent's defaults apply.
 *
 * And on the agent: a value in its own configuration wins over the signed one (a host that must
 * decide locally); the signed one over the defaults (policy never, no windows).
 */

/** At most this many windows per host or tag, and this many groups (tags) in one manifest. */
export const MAX_WINDOWS = 50;
export const MAX_WINDOW_GROUPS = 32;

/** PUT body for a host or tag. Absent fields stay as they are; null clears one (inherit). */
export const SetRebootSettingsRequest = z.strictObject({
  policy: RebootPolicy.nullable().optional(),
  /** [] is "no window: always open" (a host overriding its tags' windows); null inherits. */
  windows: z.array(MaintenanceWindow).max(MAX_WINDOWS).nullable().optional(),
  /** Tags only: at most this many hosts with the tag rebooting at once. */
  maxRebooting: z.number().int().positive().max(100_000).nullable().optional(),
});
export type SetRebootSettingsRequest = z.infer<typeof SetRebootSettingsRequest>;

/** What is set on one host or tag (null: not set there). */
export const RebootSettings = z.object({
  policy: RebootPolicy.nullable(),
  windows: z.array(MaintenanceWindow).nullable(),
  maxRebooting: z.number().int().positive().nullable(),
});
export type RebootSettings = z.infer<typeof RebootSettings>;

export const TagRebootSettings = RebootSettings.extend({ tag: z.string() });
export type TagRebootSettings = z.infer<typeof TagRebootSettings>;
export const TagRebootSettingsList = z.object({ tags: z.array(TagRebootSettings) });
export type TagRebootSettingsList = z.infer<typeof TagRebootSettingsList>;

/** Where an effective value came from: "host", "tag:NAME" (or several, for windows), or null (not set: agent decides). */
export const SettingSource = z.string().nullable();

/** GET /v1/hosts/:name/reboot-settings: what the host and its tags set, and what its manifests carry. */
export const HostRebootSettings = z.object({
  host: z.string(),
  own: RebootSettings.omit({ maxRebooting: true }),
  tags: z.array(TagRebootSettings),
  effective: z.object({
    policy: RebootPolicy.nullable(),
    policyFrom: SettingSource,
    windows: z.array(z.array(MaintenanceWindow)).nullable(),
    windowsFrom: z.array(z.string()),
    /** When the effective windows open next (now, if open); null when they never open together within 8 days. */
    windowsOpenAt: z.string().nullable(),
    /** The reboot locks of its tags: at most max of each tag rebooting at once. */
    locks: z.array(z.object({ tag: z.string(), maxRebooting: z.number().int() })),
  }),
});
export type HostRebootSettings = z.infer<typeof HostRebootSettings>;

/**
 * Signed into every manifest (ManifestPayload.reboot): the effective controller settings for that
 * activation. Signed with the assignment, so nobody between controller and agent can change them.
 */
export const ManifestRebootSettings = z.strictObject({
  /** null: none set on the controller. */
  policy: RebootPolicy.nullable(),
  /** Groups of windows: activation waits until one window of every group is open. null: none set on the controller. */
  windows: z.array(z.array(MaintenanceWindow).max(MAX_WINDOWS)).max(MAX_WINDOW_GROUPS).nullable(),
  /** The rollout set activateWithinWindows: windows hold back every activation, not only reboots. */
  windowsForAll: z.boolean(),
});
export type ManifestRebootSettings = z.infer<typeof ManifestRebootSettings>;

const STRICTNESS: Record<RebootPolicy, number> = { never: 0, 'when-needed': 1, always: 2 };

/** The most restrictive of several policies (never < when-needed < always); null for none. */
export function strictestPolicy(policies: readonly RebootPolicy[]): RebootPolicy | null {
  let best: RebootPolicy | null = null;
  for (const p of policies) if (best === null || STRICTNESS[p] < STRICTNESS[best]) best = p;
  return best;
}
