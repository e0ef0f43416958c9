import { API_OPTIONS, JSON_OPTION, type CommandSpec, type OptionTable } from '../command-spec.js';
import * as ci from '../release-ci-commands.js';
import * as releases from '../release-commands.js';

/** Releases: CI's path from a flake to a signed, published release, and releases made by hand. */

const SOURCE = 'what to build';

const SOURCE_OPTIONS = {
  flake: {
    type: 'string',
    value: 'DIR|URL[#ATTR]',
    section: SOURCE,
    description: "the hosts' flake (default: .); ATTR defaults to nixosConfigurations",
  },
  file: { type: 'string', value: 'FILE.nix', section: SOURCE, description: 'a Nix file that evaluates to a set of host -> toplevel, instead of --flake' },
  name: { type: 'string', value: 'NAME', section: SOURCE, description: 'the release name, e.g. the CI run or the git tag' },
  description: { type: 'string', value: 'D', section: SOURCE, description: 'a line about the release' },
  revision: { type: 'string', value: 'REV', section: SOURCE, description: "the source revision (default: the flake's clean git commit)" },
} as const satisfies OptionTable;

const FLOOR = {
  floor: {
    type: 'string',
    value: 'N',
    default: '0',
    description: 'hosts that accepted this release refuse every later statement below N, e.g. releases before a security fix',
  },
} as const satisfies OptionTable;

export const RELEASE_COMMANDS: CommandSpec[] = [
  {
    name: 'release build',
    summary: 'evaluate and build the systems (CI)',
    positionals: [],
    options: {
      ...SOURCE_OPTIONS,
      name: { ...SOURCE_OPTIONS.name, required: true },
      out: { type: 'string', short: 'o', value: 'FILE', default: 'release-build.json', description: 'where the release build is written ("-" for stdout)' },
    },
    description: `Evaluates the hosts' systems, builds them with nix build and writes the release (host
-> store path, with each system's closure size, kernel, initrd, kernel-modules and
switch-inhibitors) to FILE. --flake takes each host's config.system.build.toplevel of ATTR, which
may also name a set of host -> toplevel. The source revision is the git commit when the flake is a
clean git tree and flake.lock's SHA-256 is recorded. Never writes flake.lock. Progress: stderr.`,
    examples: ['shoal release build --flake . --name "ci-$CI_PIPELINE_ID"', 'shoal release build --file ./hosts.nix --name v42 -o v42.json'],
    run: ci.releaseBuild,
  },
  {
    name: 'release push-closures',
    summary: 'copy the systems into a binary cache',
    positionals: [],
    options: {
      to: { type: 'string', value: 'CACHE_URL', required: true, description: 'a Nix store URL: http://…, s3://…, file://…' },
      'cache-key': { type: 'string', value: 'FILE', description: "the cache's Nix signing key: Nix signs each path as it uploads it" },
      release: { type: 'string', value: 'FILE', default: 'release-build.json', description: 'the release build (or bundle)' },
      ...JSON_OPTION,
    },
    description: `Copies every system's closure of a release build (or bundle) into a Nix binary cache
with nix copy (paths the cache has are skipped). The cache key comes from nix-store
--generate-binary-cache-key. Hosts accept only paths signed by a key they trust.`,
    examples: ['shoal release push-closures --to https://cache.example.org \\\n  --cache-key /run/secrets/cache.secret'],
    run: ci.releasePushClosures,
  },
  {
    name: 'release sign',
    summary: 'sign a release build offline (CI)',
    positionals: ['RELEASE_BUILD.json'],
    options: {
      key: { type: 'string', value: 'FILE', required: true, description: 'the CI release key from shoal keygen' },
      ...FLOOR,
      out: { type: 'string', short: 'o', value: 'BUNDLE.json', default: 'release-bundle.json', description: 'where the bundle is written ("-" for stdout)' },
    },
    description: `Signs one release statement per host ("HOST may run STOREPATH", with the release, its
source and the floor) with the CI release key, offline: it needs no network and works on an
air-gapped machine. Refuses a key file that group or others can read.`,
    examples: ['shoal release sign --key /run/secrets/ci-release.key --floor 3 \\\n  release-build.json -o release-bundle.json'],
    run: ci.releaseSign,
  },
  {
    name: 'release publish',
    summary: 'upload a signed release, or build, push, sign and upload',
    positionals: ['[BUNDLE.json]'],
    options: {
      ...SOURCE_OPTIONS,
      cache: { type: 'string', value: 'CACHE_URL', section: SOURCE, description: 'with --flake or --file: where hosts download the systems' },
      'cache-key': { type: 'string', value: 'FILE', section: SOURCE, description: "the cache's Nix signing key" },
      key: { type: 'string', value: 'FILE', section: SOURCE, description: 'with --flake or --file: the CI release key' },
      ...FLOOR,
      'bundle-out': { type: 'string', value: 'FILE', section: SOURCE, description: 'also write the signed bundle here' },
      ...API_OPTIONS,
    },
    description: `Uploads a signed bundle; the controller checks every statement before storing the
release and refuses the whole bundle if one is bad, naming the host. Without BUNDLE.json, with
--flake or --file: build, push the closures, sign and publish in one go, with progress on stderr.
A token created with --scope ci is enough.`,
    examples: [
      'shoal release publish release-bundle.json',
      'shoal release publish --flake . --name "ci-$CI_PIPELINE_ID" \\\n  --cache https://cache.example.org --cache-key cache.secret \\\n  --key ci-release.key',
    ],
    run: ci.releasePublish,
  },
  {
    name: 'release create',
    summary: 'create a release from store paths',
    positionals: ['NAME', 'HOST=STOREPATH...'],
    options: {
      file: { type: 'string', short: 'f', value: 'FILE', description: 'the hosts as JSON, instead of HOST=STOREPATH arguments' },
      description: { type: 'string', value: 'D', description: 'a line about the release' },
      source: { type: 'string', value: 'GITREV', description: 'the source revision the systems were built from' },
      ...API_OPTIONS,
    },
    description: `Creates an immutable release: one NixOS system (store path) per host, given as
HOST=STOREPATH arguments or with --file. FILE is {"hosts": {"web-1": "/nix/store/..."}} or
{"hosts": [{"host", "storePath"}]}. Unknown hosts, invalid store paths and duplicates are
refused, each named.`,
    examples: ['shoal release create v42 --file release.json --source 1a2b3c4', 'shoal release create v43 web-1=/nix/store/...-web-1 db-1=/nix/store/…'],
    run: releases.releaseCreate,
  },
  {
    name: 'release list',
    summary: 'list releases',
    positionals: [],
    options: { ...API_OPTIONS },
    description: 'Lists releases, oldest first.',
    examples: ['shoal release list'],
    run: releases.releaseList,
  },
  {
    name: 'release show',
    summary: 'a release: its hosts and their systems',
    positionals: ['NAME'],
    options: { ...API_OPTIONS },
    description: 'Shows a release: its hosts and the system each gets.',
    examples: ['shoal release show v42 --json'],
    run: releases.releaseShow,
  },
];
