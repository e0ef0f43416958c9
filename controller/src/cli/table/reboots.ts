import { API_OPTIONS, type CommandSpec } from '../command-spec.js';
import * as reboot from '../reboot-commands.js';

/** Reboot policy, maintenance windows and reboot locks set on the controller: per host, per tag. */
export const REBOOT_COMMANDS: CommandSpec[] = [
  {
    name: 'host show',
    summary: 'one host, with its reboot settings',
    positionals: ['NAME'],
    options: { ...API_OPTIONS },
    description: `One host: its tags, phase, running and desired system, and its reboot settings as its
manifests carry them: the reboot policy and maintenance windows (each with where it was set: the
host, or which tags), when the windows open next, and the reboot locks of its tags.`,
    examples: ['shoal host show db-1'],
    run: reboot.hostShow,
  },
  {
    name: 'host set-reboot',
    summary: 'set a host’s reboot policy and windows',
    positionals: ['NAME'],
    options: { ...reboot.SETTING_OPTIONS, ...API_OPTIONS },
    description: `Sets the host's own reboot policy and maintenance windows on the controller; they
override its tags' settings and travel signed in its next manifest (the next rollout, shoal set,
or renewal). A value in the agent's own configuration still wins over them (a host that must
decide locally).`,
    examples: ['shoal host set-reboot db-1 --policy when-needed \\\n  --window "sun 03:00-05:00 UTC"'],
    run: reboot.hostSetReboot,
  },
  {
    name: 'tag set-reboot',
    summary: 'reboot policy, windows and lock for a tag',
    positionals: ['TAG'],
    options: {
      ...reboot.SETTING_OPTIONS,
      'max-rebooting': {
        type: 'string',
        value: 'N|none',
        description: 'at most N hosts with the tag rebooting at once, beside the fleet-wide lock; none removes it',
      },
      ...API_OPTIONS,
    },
    description: `Sets reboot policy, maintenance windows and a reboot lock for every host with TAG. A
host's own settings override its tags'. When tags disagree the strictest wins: the lowest policy
of never < when-needed < always, and the windows of every tag at once (the host activates only
while each such tag has a window open).`,
    examples: ['shoal tag set-reboot db --policy when-needed --max-rebooting 1 \\\n  --window "sat,sun 02:00-05:00 Europe/Berlin"'],
    run: reboot.tagSetReboot,
  },
  {
    name: 'tag list',
    summary: 'tags with reboot settings',
    positionals: [],
    options: { ...API_OPTIONS },
    description: 'Every tag with reboot settings: policy, windows and reboot lock.',
    examples: ['shoal tag list'],
    run: reboot.tagList,
  },
];
