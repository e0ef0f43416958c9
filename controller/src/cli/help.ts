/** Per-command help: what the command does, its options, and an example to copy. */

const SPEC_FLAGS = `
selection and waves:
  --hosts a,b              only these hosts of the release (default: all)
  --tags t1,t2             only hosts with these tags
  --canary N               the first N hosts form wave 0 on their own
  --waves 10%,50%,100%     cumulative waves (default 100%): percentages,
                           counts (2,5), hosts:a+b, tags:db
  --concurrency N          at most N hosts of a wave in flight at once
health and failure:
  --max-failures N|P%      failures allowed before the rollout stops (default 0)
  --min-sample N           with a percentage: finished hosts before it can trip
  --bake 5m                time a wave must stay healthy before the next starts
  --health-deadline 10m    time a host has to report healthy
  --on-failure halt|rollback
  --offline-wait 5m --offline fail|skip   what an unreachable host counts as
  --progress-deadline 1h   the whole rollout must finish in this time
  --approve-before 1,2     waves that wait for \`shoal rollout approve\`
  --action safe-switch|switch|boot|dry-activate
  --spec FILE              a rollout spec as JSON (flags override it)`;

const CONNECTION = `
connection: --controller URL (SHOAL_CONTROLLER), --token T (SHOAL_TOKEN),
  --token-file F (SHOAL_TOKEN_FILE), --config F (SHOAL_CONFIG, default
  ~/.config/shoal/cli.json: {"controller": URL, "tokenFile": F}); --json`;

export const HELP: Record<string, string> = {
  keygen: `usage: shoal keygen --name NAME --out FILE

Generates an Ed25519 signing key: the controller key (signs assignments; agents
list it in trustedControllerKeys) or a CI release key (signs release statements,
kept by CI, never by the controller; agents and the controller list it in
trustedReleaseKeys). Writes the secret key to FILE (mode 0600) and prints the
public key "NAME:BASE64".

example: shoal keygen --name controller-1 --out /var/lib/secrets/controller.key
         shoal keygen --name ci-release-1 --out ci-release.key`,
  'token create': `usage: shoal token create --state-dir DIR [--db FILE] [--name N] [--scope ci]

Creates an operator token by opening the controller's database directly (run it
on the controller machine) and prints it. --scope ci makes a token that may only
publish releases (POST /v1/releases): give that one to CI. Default: admin.

example: shoal token create --state-dir /var/lib/shoal-controller --scope ci`,
  'token list': `usage: shoal token list --state-dir DIR [--db FILE]

Lists operator tokens (ids and names; never the secrets).

example: shoal token list --state-dir /var/lib/shoal-controller`,
  'token revoke': `usage: shoal token revoke --state-dir DIR [--db FILE] ID

Revokes an operator token; requests that carry it are refused from then on.

example: shoal token revoke --state-dir /var/lib/shoal-controller 3`,
  'enroll-token create': `usage: shoal enroll-token create [--ttl 1h] [--max-uses N] [--tag T]...

Creates a token that new agents enroll with; enrolled hosts get the tags.
${CONNECTION}

example: shoal enroll-token create --ttl 2h --max-uses 10 --tag web`,
  'host register': `usage: shoal host register NAME --public-key BASE64 [--tag T]...

Registers a host whose Ed25519 public key you already know.
${CONNECTION}

example: shoal host register web-2 --public-key 3q2+7w...= --tag web`,
  'host diff': `usage: shoal host diff HOST [--target STOREPATH] [--json]

What HOST runs against its desired system (or --target), read by the controller
from its binary caches: packages added, removed and changed (old → new), what
the host would download, closure sizes. A drifted host (one switched by hand)
says so.
${CONNECTION}

example: shoal host diff web-1`,
  set: `usage: shoal set HOST STOREPATH [--action safe-switch|switch|boot|dry-activate]

Sets one host's desired system at once, outside any rollout.
${CONNECTION}

example: shoal set web-1 /nix/store/...-nixos-system-web-1 --action switch`,
  status: `usage: shoal status [--json]

Fleet status: one row per host; * marks a host not yet on its desired system.
${CONNECTION}

example: shoal status --json | jq '.hosts[] | select(.phase == "failed")'`,
  history: `usage: shoal history HOST [--limit N] [--json]

A host's event history: manifests issued, reports, connections.
${CONNECTION}

example: shoal history web-1 --limit 20`,
  'release build': `usage: shoal release build (--flake DIR|URL[#ATTR] | --file FILE.nix)
                           --name NAME [--description D] [--revision REV]
                           [-o FILE]

Evaluates the hosts' systems, builds them with nix build and writes the release
(host -> store path, with each system's closure size, kernel, initrd,
kernel-modules and switch-inhibitors) to FILE (default release-build.json, "-"
for stdout). ATTR defaults to nixosConfigurations (each host's
config.system.build.toplevel); it may also name a set of host -> toplevel.
--file takes a Nix file that evaluates to such a set. The source revision is
the git commit when the flake is a clean git tree (--revision overrides) and
flake.lock's SHA-256 is recorded. Never writes flake.lock. Progress: stderr.

examples: shoal release build --flake . --name "ci-$CI_PIPELINE_ID"
          shoal release build --file ./hosts.nix --name v42 -o v42.json`,
  'release push-closures': `usage: shoal release push-closures --to CACHE_URL [--cache-key FILE]
                                   [--release FILE]

Copies every system's closure of a release build (or bundle) into a Nix binary
cache with nix copy (paths the cache has are skipped). --cache-key is the
cache's Nix signing key (nix-store --generate-binary-cache-key): Nix signs
each path as it uploads it. Hosts accept only paths signed by a key they trust.
FILE defaults to release-build.json.

example: shoal release push-closures --to https://cache.example.org \\
           --cache-key /run/secrets/cache.secret`,
  'release sign': `usage: shoal release sign --key FILE [--floor N] RELEASE_BUILD.json
                          [-o BUNDLE.json]

Signs one release statement per host ("HOST may run STOREPATH", with the
release, its source and the floor) with the CI release key, offline: it needs
no network and works on an air-gapped machine. Writes the bundle to
BUNDLE.json (default release-bundle.json). Refuses a key file that group or
others can read. --floor N (default 0): hosts that accepted this release
refuse every later statement below N, e.g. releases before a security fix.

example: shoal release sign --key /run/secrets/ci-release.key --floor 3 \\
           release-build.json -o release-bundle.json`,
  'release publish': `usage: shoal release publish BUNDLE.json
       shoal release publish (--flake DIR[#ATTR] | --file F) --name NAME
         --cache CACHE_URL [--cache-key F] --key CI_KEY [--floor N]
         [--description D] [--revision REV] [--bundle-out FILE]

Uploads a signed bundle; the controller checks every statement before storing
the release and refuses the whole bundle if one is bad, naming the host. With
--flake or --file: build, push the closures, sign and publish in one go, with
progress on stderr. A token created with --scope ci is enough.
${CONNECTION}

examples: shoal release publish release-bundle.json
          shoal release publish --flake . --name "ci-$CI_PIPELINE_ID" \\
            --cache https://cache.example.org --cache-key cache.secret \\
            --key ci-release.key`,
  'release create': `usage: shoal release create NAME (--file FILE | HOST=STOREPATH...)
                            [--description D] [--source GITREV]

Creates an immutable release: one NixOS system (store path) per host. FILE is
{"hosts": {"web-1": "/nix/store/..."}} or {"hosts": [{"host", "storePath"}]}.
Unknown hosts, invalid store paths and duplicates are refused, each named.
${CONNECTION}

examples: shoal release create v42 --file release.json --source 1a2b3c4
          shoal release create v43 web-1=/nix/store/...-web-1 db-1=/nix/store/…`,
  'release list': `usage: shoal release list [--json]

Lists releases, oldest first.
${CONNECTION}

example: shoal release list`,
  'release show': `usage: shoal release show NAME [--json]

Shows a release: its hosts and the system each gets.
${CONNECTION}

example: shoal release show v42 --json`,
  'rollout plan': `usage: shoal rollout plan RELEASE [spec flags]

Dry run: prints the waves the rollout would use, their hosts in order, the
canary and the approval gates. The same flags to \`start\` give the same plan.
With binary caches configured on the controller it also prints what the
release changes (packages old → new across the fleet, the download, hosts
grouped by change set), hosts that drifted, and the cache preflight: whether
every path of every target closure is in the cache, signed by a trusted key.
--json gives all of it, with every host's diff.
${SPEC_FLAGS}
${CONNECTION}

example: shoal rollout plan v42 --canary 1 --waves 25%,100% --approve-before 2`,
  'rollout start': `usage: shoal rollout start RELEASE [spec flags] [--watch] [--skip-preflight]

Starts a rollout of RELEASE and prints its status (its id comes first).
With --watch, follows it like \`shoal rollout watch\` and exits the same way.
The controller first checks that its binary caches hold every path of every
target closure, signed by a trusted key, and refuses the rollout naming each
missing or unsigned path and its hosts; --skip-preflight starts anyway (the
audit log records it).
${SPEC_FLAGS}
${CONNECTION}

example: shoal rollout start v42 --canary 1 --waves 25%,100% --bake 5m \\
           --max-failures 10% --min-sample 4 --on-failure rollback --watch`,
  'rollout status': `usage: shoal rollout status ID [--json]

One rollout: its state, each wave's hosts pending / in progress / healthy /
failed / skipped, bake time left, failures against the threshold, and every
failed host with its reason.
${CONNECTION}

example: shoal rollout status ro-1a2b3c4d`,
  'rollout watch': `usage: shoal rollout watch ID [--json]

Follows a rollout live until it ends. On a terminal the view redraws; otherwise
one line per change (--json: one JSON object per line). Exits 0 when the rollout
succeeded, 1 when it halted, rolled back or was aborted.
${CONNECTION}

example: shoal rollout watch ro-1a2b3c4d || notify-send "rollout failed"`,
  'rollout list': `usage: shoal rollout list [--json]

The latest 50 rollouts, newest first.
${CONNECTION}

example: shoal rollout list`,
  'rollout approve': `usage: shoal rollout approve ID

Lets a rollout that waits for approval start its next wave.
${CONNECTION}

example: shoal rollout approve ro-1a2b3c4d`,
  'rollout pause': `usage: shoal rollout pause ID

Stops issuing new manifests and stops the bake clock; hosts already updating
finish. \`resume\` continues.
${CONNECTION}

example: shoal rollout pause ro-1a2b3c4d`,
  'rollout resume': `usage: shoal rollout resume ID

Continues a paused rollout where it stood.
${CONNECTION}

example: shoal rollout resume ro-1a2b3c4d`,
  'rollout abort': `usage: shoal rollout abort ID

Ends a rollout now; hosts keep whatever system they have.
${CONNECTION}

example: shoal rollout abort ro-1a2b3c4d`,
  'rollout rollback': `usage: shoal rollout rollback ID

Moves every host the rollout changed back to the system it ran before
(as new signed manifests).
${CONNECTION}

example: shoal rollout rollback ro-1a2b3c4d`,
};
