import { API_OPTIONS, JSON_OPTION, type CommandSpec } from '../command-spec.js';
import * as commands from '../commands.js';
import * as lifecycle from '../lifecycle-commands.js';

/** Signing keys and operator and enrollment tokens. */

const LOCAL_DB_OPTIONS = {
  'state-dir': { type: 'string', value: 'DIR', description: "the controller's state directory: open its database directly" },
  db: { type: 'string', value: 'FILE', description: "the controller's SQLite database file, instead of --state-dir" },
} as const;

export const CREDENTIAL_COMMANDS: CommandSpec[] = [
  {
    name: 'keygen',
    summary: 'generate a controller or CI release key',
    positionals: [],
    options: {
      name: { type: 'string', value: 'NAME', required: true, description: 'the key id agents will trust' },
      out: { type: 'string', value: 'FILE', required: true, description: 'where the secret key is written, mode 0600' },
      ...JSON_OPTION,
    },
    description: `Generates an Ed25519 signing key: the controller key (signs assignments; agents
list it in trustedControllerKeys) or a CI release key (signs release statements, kept by CI, never
by the controller; agents and the controller list it in trustedReleaseKeys). Writes the secret key
to FILE (mode 0600) and prints the public key "NAME:BASE64".`,
    examples: ['shoal keygen --name controller-1 --out /var/lib/secrets/controller.key', 'shoal keygen --name ci-release-1 --out ci-release.key'],
    run: commands.keygen,
  },
  {
    name: 'key show',
    summary: 'print the public half of a key',
    positionals: ['FILE'],
    options: { ...JSON_OPTION },
    description: `Prints the public half of a key again: "NAME:BASE64" for a key made by \`shoal keygen\`
(for trustedControllerKeys / trustedReleaseKeys), or the bare base64 of an agent's host key (for
\`shoal host register --public-key\`).`,
    examples: ['shoal key show /var/lib/secrets/controller.key', 'shoal key show /var/lib/shoal-agent/host.key'],
    run: commands.keyShow,
  },
  {
    name: 'token create',
    summary: 'create an operator token',
    positionals: [],
    options: {
      name: { type: 'string', value: 'N', default: 'operator', description: 'a name to tell the token by' },
      scope: { type: 'string', value: 'read|deploy|admin|ci', default: 'admin', description: 'what the token may do' },
      ...LOCAL_DB_OPTIONS,
      ...API_OPTIONS,
    },
    description: `Creates an operator token and prints it (the only time it is shown). Scopes: read
(look only), deploy (read, set, releases, rollouts), admin (everything: tokens, hosts, webhooks,
backups), ci (only publish releases). With --state-dir it opens the controller's database directly
(on the controller machine; how the first tokens are made), else it asks the API (admin token).`,
    examples: ['shoal token create --name ci --scope ci', 'shoal token create --state-dir /var/lib/shoal-controller --name alice'],
    run: commands.tokenCreate,
  },
  {
    name: 'token list',
    summary: 'list operator tokens',
    positionals: [],
    options: { ...LOCAL_DB_OPTIONS, ...API_OPTIONS },
    description: 'Lists operator tokens: id, name, scope, created, revoked (never the secrets).',
    examples: ['shoal token list'],
    run: commands.tokenList,
  },
  {
    name: 'token revoke',
    summary: 'revoke an operator token',
    positionals: ['ID'],
    options: { ...LOCAL_DB_OPTIONS, ...API_OPTIONS },
    description: `Revokes an operator token; requests that carry it, and dashboard sessions opened with
it, are refused from then on.`,
    examples: ['shoal token revoke 3f1c9a0e2b7d4c13'],
    run: commands.tokenRevoke,
  },
  {
    name: 'enroll-token create',
    summary: 'create a token new agents enroll with',
    positionals: [],
    options: {
      ttl: { type: 'string', value: 'DURATION', default: '1h', description: 'how long the token is valid' },
      'max-uses': { type: 'string', value: 'N', description: 'how many hosts may enroll with it (default: any)' },
      tag: { type: 'string', value: 'T', multiple: true, description: 'a tag every host enrolled with it gets' },
      ...API_OPTIONS,
    },
    description: 'Creates a token that new agents enroll with; enrolled hosts get the tags.',
    examples: ['shoal enroll-token create --ttl 2h --max-uses 10 --tag web'],
    run: commands.enrollTokenCreate,
  },
  {
    name: 'enroll-token list',
    summary: 'list enrollment tokens',
    positionals: [],
    options: { ...API_OPTIONS },
    description: `Lists enrollment tokens: id, state (active, expired, used-up, revoked), uses, expiry,
tags. Never the tokens themselves (only their hashes are stored).`,
    examples: ['shoal enroll-token list'],
    run: lifecycle.enrollTokenList,
  },
  {
    name: 'enroll-token revoke',
    summary: 'revoke an enrollment token',
    positionals: ['ID'],
    options: { ...API_OPTIONS },
    description: `Revokes an enrollment token: no new host enrolls with it. Hosts that already enrolled
with it stay enrolled (remove one with shoal host rm).`,
    examples: ['shoal enroll-token revoke 5f0c1e9a2b7d4c13'],
    run: lifecycle.enrollTokenRevoke,
  },
];
