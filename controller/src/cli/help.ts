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
  --approve-before 2,3     waves (counted from 1; the canary is wave 1)
                           that wait for \`shoal rollout approve\`
  --action safe-switch|switch|boot|dry-activate
reboots:
  --max-rebooting N        at most N hosts of this rollout rebooting at once
  --activate-within-windows   hosts activate only while their maintenance
                           windows are open, even without a reboot
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
  'token create': `usage: shoal token create [--state-dir DIR | --db FILE] [--name N]
         [--scope read|deploy|admin|ci]

Creates an operator token and prints it (the only time it is shown). Scopes:
read (look only), deploy (read, set, releases, rollouts), admin (everything:
tokens, hosts, webhooks, backups; the default), ci (only publish releases).
With --state-dir it opens the controller's database directly (on the controller
machine; how the first tokens are made), else it asks the API (admin token).
${CONNECTION}

example: shoal token create --name ci --scope ci
         shoal token create --state-dir /var/lib/shoal-controller --name alice`,
  'token list': `usage: shoal token list [--state-dir DIR | --db FILE]

Lists operator tokens: id, name, scope, created, revoked (never the secrets).
${CONNECTION}

example: shoal token list`,
  'token revoke': `usage: shoal token revoke [--state-dir DIR | --db FILE] ID

Revokes an operator token; requests that carry it, and dashboard sessions
opened with it, are refused from then on.
${CONNECTION}

example: shoal token revoke 3f1c9a0e2b7d4c13`,
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
  'enroll-token list': `usage: shoal enroll-token list

Lists enrollment tokens: id, state (active, expired, used-up, revoked), uses,
expiry, tags. Never the tokens themselves (only their hashes are stored).
${CONNECTION}

example: shoal enroll-token list`,
  'enroll-token revoke': `usage: shoal enroll-token revoke ID

Revokes an enrollment token: no new host enrolls with it. Hosts that already
enrolled with it stay enrolled (remove one with shoal host rm).
${CONNECTION}

example: shoal enroll-token revoke 5f0c1e9a2b7d4c13`,
  'host rm': `usage: shoal host rm NAME

Removes a host with its manifests, reports and history; its agent can no longer
log in (its open connection is closed). Refused while an active rollout
includes the host: abort it or let it finish first.
${CONNECTION}

example: shoal host rm web-7`,
  'host pause': `usage: shoal host pause NAME

Pauses a host: no rollout issues it a new manifest (it waits in its wave, shown
as paused, neither failed nor skipped; a rollout with a progress deadline halts
if nothing else moves), and \`shoal set\` on it is refused unless --force. What
it runs and holds now is unchanged. Undo with \`shoal host resume NAME\`.
${CONNECTION}

example: shoal host pause db-1`,
  'host resume': `usage: shoal host resume NAME

Resumes a paused host: a rollout waiting for it issues it its manifest now.
${CONNECTION}

example: shoal host resume db-1`,
  'host show': `usage: shoal host show NAME [--json]

One host: its tags, phase, running and desired system, and its reboot
settings as its manifests carry them: the reboot policy and maintenance
windows (each with where it was set: the host, or which tags), when the
windows open next, and the reboot locks of its tags.
${CONNECTION}

example: shoal host show db-1`,
  'host set-reboot': `usage: shoal host set-reboot NAME [--policy P] [--window W]...
                           [--windows inherit|always]

Sets the host's own reboot policy and maintenance windows on the controller;
they override its tags' settings and travel signed in its next manifest (the
next rollout, shoal set, or renewal). A value in the agent's own configuration
still wins over them (a host that must decide locally).
  --policy never|when-needed|always|inherit
                           inherit: take the tags' (the strictest of them)
  --window "DAYS HH:MM-HH:MM [ZONE]"   e.g. "sat,sun 02:00-05:00 Europe/Berlin",
                           "mon-fri 22:00-04:00" (crosses midnight; UTC by
                           default), "daily 01:00-03:00"; repeat for several
  --windows inherit|always inherit: the tags' windows; always: no window
${CONNECTION}

example: shoal host set-reboot db-1 --policy when-needed \\
           --window "sun 03:00-05:00 UTC"`,
  'tag set-reboot': `usage: shoal tag set-reboot TAG [--policy P] [--window W]...
                           [--windows inherit|always] [--max-rebooting N|none]

Sets reboot policy, maintenance windows and a reboot lock for every host with
TAG. A host's own settings override its tags'. When tags disagree the
strictest wins: the lowest policy of never < when-needed < always, and the
windows of every tag at once (the host activates only while each such tag has
a window open). --max-rebooting N: at most N hosts with the tag reboot at once,
beside the fleet-wide lock (reboots.maxConcurrent); none removes the lock.
  --policy never|when-needed|always|inherit
  --window "DAYS HH:MM-HH:MM [ZONE]"   repeat for several
  --windows inherit|always inherit: unset; always: no window (always open)
${CONNECTION}

example: shoal tag set-reboot db --policy when-needed --max-rebooting 1 \\
           --window "sat,sun 02:00-05:00 Europe/Berlin"`,
  'tag list': `usage: shoal tag list [--json]

Every tag with reboot settings: policy, windows and reboot lock.
${CONNECTION}

example: shoal tag list`,
  'host rekey': `usage: shoal host rekey NAME --public-key BASE64

Gives a known host a new key (a reinstalled machine). Its history and desired
state stay; the old key stops working at once. The agent logs its public key
and fingerprint at start ("host identity loaded").
${CONNECTION}

example: shoal host rekey web-2 --public-key 3q2+7w...=`,
  'host unknown': `usage: shoal host unknown

Lists hosts this controller does not know that tried to connect, with the
fingerprint of the key they proved they hold and the version they accepted:
typically the fleet after the controller's database was lost.
${CONNECTION}

example: shoal host unknown`,
  'host adopt': `usage: shoal host adopt NAME [--fingerprint SHA256:…] [--tag T]...

Makes an unknown host that tried to connect a known host, with the key it
presented; it is served at its next login, above the version it accepted.
Compare the fingerprint with the one the agent logs at start. When several
keys tried the name, --fingerprint says which one is the host.
${CONNECTION}

example: shoal host adopt web-3 --fingerprint SHA256:q3bS…`,
  backup: `usage: shoal backup --out FILE

Downloads a consistent copy of the controller's database, taken online (the
controller keeps serving), checks it with SQLite's integrity check and writes
it to FILE (mode 0600: it holds webhook secrets). Needs an admin token. To
restore: see "Backup and restore" in controller/README.md.
${CONNECTION}

example: shoal backup --out /var/backups/shoal-$(date +%F).sqlite`,
  set: `usage: shoal set HOST STOREPATH [--force]
                 [--action safe-switch|switch|boot|dry-activate]

Sets one host's desired system at once, outside any rollout. A paused host
(shoal host pause) is refused unless --force.
${CONNECTION}

example: shoal set web-1 /nix/store/...-nixos-system-web-1 --action switch`,
  status: `usage: shoal status [--failed] [--tag TAG]... [--rollout ID] [--wide] [--json]

Fleet status: a summary line (hosts healthy, failed, deploying, offline), then
one row per host: its phase, generation (#7; * while it is not yet running
it), the release and the rollout it is on. Under each failed host: what the
failure most likely means and the last lines of the failing command's output.
  --failed        only failed hosts
  --tag TAG       only hosts with this tag (repeat for any of several)
  --rollout ID    only hosts whose newest generation came from this rollout
  --wide          also the current and desired systems and the agent version
Times are local with their zone; --json gives the API's ISO 8601 UTC.
${CONNECTION}

example: shoal status --failed --tag web`,
  history: `usage: shoal history HOST [--limit N] [--json]

A host's event history as sentences, oldest first (the newest N, default 50):
generations issued, what the agent reported, connections, rollout steps; a
failure is followed by what it most likely means and the command's last lines.
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
succeeded, 1 when it halted, rolled back (or failed to), or was aborted.
${CONNECTION}

example: shoal rollout watch ro-1a2b3c4d || notify-send "rollout failed"`,
  'webhook add': `usage: shoal webhook add URL [--event TYPE]... [--description D]
                           [--secret-file FILE]

Adds an endpoint that receives rollout events as signed JSON POSTs
(X-Shoal-Signature: sha256=HMAC of the body with the secret). TYPE is an event
type (rollout-halted, rollout-host-failed, ...) or * for all; default: all but
the per-host issued/healthy events. Without --secret-file a secret is made
and printed once. Every body has a "text" line that Slack, Mattermost, Matrix
(hookshot) and Discord (its URL ending in /slack) post as it is.
${CONNECTION}

example: shoal webhook add https://hooks.slack.com/services/T0/B0/XXXX \\
           --event rollout-halted --event rollout-host-failed`,
  'webhook list': `usage: shoal webhook list [--json]

Lists endpoints: active or dead, deliveries pending and failed, and for each
endpoint with a queue the delivery at its head (attempts, last error, next try).
${CONNECTION}

example: shoal webhook list`,
  'webhook rm': `usage: shoal webhook rm ID

Removes an endpoint; its pending deliveries are dropped.
${CONNECTION}

example: shoal webhook rm wh-1a2b3c4d5e6f`,
  'webhook test': `usage: shoal webhook test ID

Sends a signed ping (X-Shoal-Event: ping) now and says whether it arrived. A
dead endpoint (given up after hours without an answer) that answers is active
again; events from then on are delivered.
${CONNECTION}

example: shoal webhook test wh-1a2b3c4d5e6f`,
  'key show': `usage: shoal key show FILE

Prints the public half of a key again: "NAME:BASE64" for a key made by
\`shoal keygen\` (for trustedControllerKeys / trustedReleaseKeys), or the bare
base64 of an agent's host key (for \`shoal host register --public-key\`).

example: shoal key show /var/lib/secrets/controller.key
         shoal key show /var/lib/shoal-agent/host.key`,
  'rollout list': `usage: shoal rollout list [--json]

The latest 50 rollouts, newest first.
${CONNECTION}

example: shoal rollout list`,
  'rollout approve': `usage: shoal rollout approve ID

Lets a rollout that waits for approval start its next wave.
${CONNECTION}

example: shoal rollout approve ro-1a2b3c4d`,
  'rollout pause': `usage: shoal rollout pause ID

Stops issuing new manifests and stops every clock of the rollout (bake, wave,
and each host's health and offline deadlines); hosts already updating finish.
\`resume\` continues.
${CONNECTION}

example: shoal rollout pause ro-1a2b3c4d`,
  'rollout resume': `usage: shoal rollout resume ID

Continues a paused rollout where it stood.
${CONNECTION}

example: shoal rollout resume ro-1a2b3c4d`,
  'rollout abort': `usage: shoal rollout abort ID

Ends a rollout now; hosts keep whatever system they have. A rollout that is
rolling back can be aborted too: hosts already sent back still go back.
${CONNECTION}

example: shoal rollout abort ro-1a2b3c4d`,
  'rollout rollback': `usage: shoal rollout rollback ID

Moves every host the rollout changed back to the system it ran before
(as new signed manifests). Ends as rolled-back when every host proved healthy
on its previous system, as rollback-failed when one did not.
${CONNECTION}

example: shoal rollout rollback ro-1a2b3c4d`,
  'rollout retry': `usage: shoal rollout retry ID [--watch] [--skip-preflight] [--json]

Starts a new rollout of the same release and settings for only the hosts the
finished rollout ID failed, skipped, never reached or rolled back; hosts
already healthy on it are left alone. The new rollout names ID as the one it
retries. --watch follows it like \`rollout watch\`. Like a start, it is
refused when the binary cache cannot serve the target closures
(--skip-preflight starts anyway).
${CONNECTION}

example: shoal rollout retry ro-1a2b3c4d --watch`,
};
