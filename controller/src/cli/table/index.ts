import type { CommandSpec } from '../command-spec.js';
import { CREDENTIAL_COMMANDS } from './credentials.js';
import { HOST_COMMANDS } from './hosts.js';
import { REBOOT_COMMANDS } from './reboots.js';
import { RELEASE_COMMANDS } from './releases.js';
import { ROLLOUT_COMMANDS } from './rollouts.js';
import { WEBHOOK_COMMANDS } from './webhooks.js';

/** Every command of `shoal`, in the order `shoal --help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [...CREDENTIAL_COMMANDS, ...HOST_COMMANDS, ...REBOOT_COMMANDS, ...RELEASE_COMMANDS, ...ROLLOUT_COMMANDS, ...WEBHOOK_COMMANDS];
