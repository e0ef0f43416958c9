import type { CliIo, GlobalValues } from './context.js';

/**
 * One command of the CLI, described once: the parser reads its positionals and options from
 * here, and its help is rendered from here, so help cannot name an option the parser refuses.
 */

interface OptionBase {
  /** One sentence, lower case; the help wraps it. A required option's refusal quotes it. */
  description: string;
  /** One letter: `-o` for `--out`. */
  short?: string;
  /** The heading the help lists it under; without one, "options". */
  section?: string;
}

export interface StringOption extends OptionBase {
  type: 'string';
  /** What the help shows for the value: "FILE", "N", "10%,50%,100%". */
  value: string;
  /** May be given more than once (each occurrence adds to a list). */
  multiple?: boolean;
  default?: string;
  /** The parser refuses the command without it, quoting the description. */
  required?: boolean;
}

export interface BooleanOption extends OptionBase {
  type: 'boolean';
}

export type OptionSpec = StringOption | BooleanOption;
export type OptionTable = Record<string, OptionSpec>;

export type Values = GlobalValues & Record<string, string | boolean | string[] | undefined>;

/** A command's arguments after the parser checked them against its table. */
export interface Parsed {
  values: Values;
  positionals: string[];
}

export interface CommandSpec {
  /** "keygen", "rollout start": a group and a subcommand are separated by one space. */
  name: string;
  /** One line for `shoal --help`. */
  summary: string;
  /**
   * Argument names as the help and the refusals show them: "NAME" is required, a last "[NAME]"
   * optional, and a last "NAME..." takes any number more.
   */
  positionals: string[];
  options: OptionTable;
  /** Paragraphs separated by a blank line, wrapped by the help; lines starting with a space stay as written. */
  description: string;
  /** Commands to copy; a line after the first continues the one before (a trailing "\"). */
  examples: string[];
  run(input: Parsed, io: CliIo): Promise<void>;
}

/** How to reach the controller: every command that talks to it takes these. */
export const CONNECTION_OPTIONS = {
  controller: {
    type: 'string',
    value: 'URL',
    section: 'connection',
    description: 'the controller (else $SHOAL_CONTROLLER, the config file, http://127.0.0.1:8420)',
  },
  token: { type: 'string', value: 'T', section: 'connection', description: 'an operator token (else $SHOAL_TOKEN)' },
  'token-file': {
    type: 'string',
    value: 'F',
    section: 'connection',
    description: 'a file holding the token (else $SHOAL_TOKEN_FILE, the config file)',
  },
  config: {
    type: 'string',
    value: 'F',
    section: 'connection',
    description: 'the CLI config, {"controller": URL, "tokenFile": F} (else $SHOAL_CONFIG, ~/.config/shoal/cli.json)',
  },
} as const satisfies OptionTable;

export const JSON_OPTION = {
  json: { type: 'boolean', description: 'print JSON (times in ISO 8601 UTC) instead of text' },
} as const satisfies OptionTable;

/** The usual pair: output as JSON, and the way to the controller. */
export const API_OPTIONS = { ...JSON_OPTION, ...CONNECTION_OPTIONS } as const satisfies OptionTable;
