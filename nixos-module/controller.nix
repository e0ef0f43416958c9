{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    types
    ;
  rules = import ./rules.nix { inherit lib; };

  cfg = config.services.shoal-controller;
  opt = "services.shoal-controller";
  settingsFormat = pkgs.formats.json { };

  user = "shoal-controller";

  # Key files stay root-only; systemd hands the service copies it alone can read.
  credential = name: "/run/credentials/shoal-controller.service/${name}";
  singleKeyMode = cfg.singleKeyReleaseKeyFile != null;
  postgres = cfg.database != null;
  # Ordered after the server only when it runs on this machine; elsewhere the controller retries.
  localPostgres = postgres && config.services.postgresql.enable;
  releaseKeys = lib.toList (cfg.settings.trustedReleaseKeys or [ ]);

  listen =
    if lib.hasInfix ":" cfg.listenAddress then
      "[${cfg.listenAddress}]:${toString cfg.port}"
    else
      "${cfg.listenAddress}:${toString cfg.port}";

  loopbackAddresses = [
    "127.0.0.1"
    "::1"
    "localhost"
  ];

  renderedConfig = settingsFormat.generate "shoal-controller.json" cfg.settings;

  configFile = import ./checked-config.nix { inherit lib pkgs; } {
    name = "shoal-controller-checked.json";
    rendered = renderedConfig;
    exe = lib.getExe' cfg.package "shoal-controller";
    check = cfg.checkConfig;
  };

  privilegedPort = cfg.port < 1024;
in
{
  imports = [
    (lib.mkRemovedOptionModule [ "services" "shoal-controller" "releaseKeyFile" ] ''
      The controller no longer holds the key agents trust for what to run. Set
      services.shoal-controller.controllerKeyFile to the key that signs assignments and
      trustedReleaseKeys to CI's release public keys; or, for the weaker single-key mode, set
      singleKeyReleaseKeyFile to the old release key file.
    '')
  ];

  options.services.shoal-controller = {
    enable = mkEnableOption "the Shoal controller, which holds every host's desired generation and runs rollouts";

    package = lib.mkPackageOption pkgs "shoal" { } // {
      default = pkgs.shoal or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.shoal or (pkgs.callPackage ./package.nix { })";
    };

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = "Address the HTTP and websocket API listens on. Keep the default behind a reverse proxy that terminates TLS.";
    };

    port = mkOption {
      type = types.port;
      default = 8420;
      description = "TCP port the API listens on.";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open `port` in the firewall (only useful with a non-loopback `listenAddress`).";
    };

    controllerKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/secrets/shoal-controller.key";
      description = ''
        File holding the controller key (`name:base64` secret, from
        `shoal keygen --name controller-1 --out FILE`), readable by root only. It signs
        assignments; every agent lists its public half in `trustedControllerKeys`. A path as a
        string, so the secret never enters the Nix store; the service receives it as a systemd
        credential. Required.
      '';
    };

    trustedReleaseKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "release-1:Rvq2yaeA0X9M6DRG0cKx+t1wMOrhSlhaJtfy7zPPmAo=" ];
      description = ''
        CI's release public keys (`name:base64`): every statement of a published release
        bundle must verify under one of them. List the old and the new key while rotating.
        Required unless `singleKeyReleaseKeyFile` is set.
      '';
    };

    binaryCaches = mkOption {
      default = [ ];
      example = literalExpression ''
        [ { url = "https://cache.example.org"; publicKeys = [ "cache.example.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ]; } ]
      '';
      description = ''
        Binary caches the controller reads to show what a rollout changes (closure diffs per
        host and across the fleet) and to check, before a rollout issues anything, that every
        path of every target closure is there and signed by a key the hosts trust. List the
        caches and Nix keys the agents use (their `substituters` and `trustedPublicKeys`).
        Empty: no diffs, no preflight.
      '';
      type = types.listOf (
        types.submodule {
          options = {
            url = mkOption {
              type = types.str;
              example = "https://cache.example.org";
              description = "Base URL of the cache (`http://` or `https://`), where `nix-cache-info` lives.";
            };
            publicKeys = mkOption {
              type = types.listOf types.str;
              example = [ "cache.example.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
              description = "Nix cache keys (`name:base64`) whose signatures on this cache's narinfos count as trusted.";
            };
          };
        }
      );
    };

    singleKeyReleaseKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/secrets/shoal-release.key";
      description = ''
        Single-key mode: a release key (`name:base64` secret) the controller holds and signs
        release statements with itself, so releases need no CI signature. Weaker: whoever takes
        over the controller can then make every host install anything. `null` (the default) is
        two-key mode, where only CI holds release keys. Root-only, outside the Nix store,
        passed as a systemd credential.
      '';
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/shoal-controller";
      description = ''
        Directory for the database and the first operator token (`admin-token`). Must be
        below /var/lib: systemd's StateDirectory= creates it for the service user.
      '';
    };

    databasePath = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/shoal-controller/fleet.sqlite";
      description = "SQLite database file, used when `database` is `null`; `null` means `controller.sqlite` in `stateDir`. Must be inside `stateDir`, the only place the service may write.";
    };

    database = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "postgresql://shoal-controller@localhost/shoal-controller?host=/run/postgresql";
      description = ''
        A PostgreSQL database as a `postgres://` or `postgresql://` URL, without its password:
        the controller keeps its state there, and several controllers (replicas) may share it.
        `null` (the default): a SQLite file, `databasePath`. The URL above reaches a server on
        this machine over its Unix socket with peer authentication as the service user (create
        the role and database with `services.postgresql.ensureUsers` and `ensureDatabases`);
        for a remote server write e.g. `postgres://shoal@db.example.org/shoal?sslmode=verify-full`
        and set `databasePasswordFile`. The URL is written to the world-readable configuration
        file, so a password in it is refused.
      '';
    };

    databasePasswordFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/secrets/shoal-controller-db-password";
      description = ''
        File holding the PostgreSQL password of `database` (a trailing newline is dropped),
        readable by root only. A path as a string, so the secret never enters the Nix store;
        the service receives it as a systemd credential.
      '';
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Validate the generated configuration file with `shoal-controller check-config`
        while building the system. This runs the package on the build machine, so turn it
        off when cross-compiling.
      '';
    };

    settings = mkOption {
      default = { };
      description = ''
        The controller's configuration file (JSON). The options above are written into
        it; set anything else here (`shoal-controller serve --help` lists every field), e.g.:

        - `admission`: caps on what clients that have not authenticated may hold:
          `pendingChallenges` (10000), `pendingChallengesPerAddress` (256),
          `unauthenticatedConnections` (10000), `unauthenticatedConnectionsPerAddress` (256).
          Raise the per-address caps when many hosts reach the controller through one NAT
          address or a reverse proxy.
        - `webhooks`: webhook URLs that point at loopback, link-local (cloud metadata) or
          private ranges are refused unless `allowedNetworks` lists them as CIDRs
          (e.g. `[ "10.20.0.0/16" ]`) or `allowPrivateNetworks = true`.
        - `retention`: days kept before pruning (null: forever): `reportsDays` (30),
          `eventsDays` (30), `auditEventsDays` (400, rollout and operator events),
          `webhookDeliveriesDays` (30), `manifestsDays` (90, superseded manifests; what a
          host or rollout may still need is kept); `pruneIntervalSeconds` (300).
      '';
      example = {
        publicUrl = "https://shoal.example.org";
        manifestTtlSeconds = 3600;
        webhooks.allowedNetworks = [ "10.20.0.0/16" ];
        retention.reportsDays = 14;
      };
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          manifestTtlSeconds = mkOption {
            type = types.ints.positive;
            default = 86400;
            description = "Seconds a signed manifest stays valid; the controller renews them before they expire.";
          };
          cacheConcurrency = mkOption {
            type = types.ints.between 1 512;
            default = 32;
            description = "Narinfo requests the controller has in flight at once, over all `binaryCaches`.";
          };
          cacheTimeoutSeconds = mkOption {
            type = types.ints.positive;
            default = 10;
            description = "Seconds one narinfo request to a binary cache may take.";
          };
          publicUrl = mkOption {
            type = types.nullOr types.str;
            default = null;
            example = "https://shoal.example.org";
            description = "URL agents and operators reach the controller at, when it differs from the listen address (behind a proxy).";
          };
        };
      };
    };
  };

  config = mkIf cfg.enable {
    # The unit is built from these (StateDirectory=, credentials, firewall port), so a different
    # value in settings must be a conflict, not a silent override that breaks the service.
    services.shoal-controller.settings = {
      inherit listen;
      inherit (cfg) stateDir;
      database = if postgres then cfg.database else cfg.databasePath;
      databasePasswordFile = if cfg.databasePasswordFile != null then credential "database-password" else null;
      controllerKeyFile = credential "controller-key";
      singleKeyReleaseKeyFile = if singleKeyMode then credential "release-key" else null;
      # Nothing else here depends on it: settings may replace it.
      trustedReleaseKeys = lib.mkDefault cfg.trustedReleaseKeys;
      caches = lib.mkDefault cfg.binaryCaches;
    };

    assertions = [
      {
        assertion = cfg.controllerKeyFile != null;
        message = "${opt}.controllerKeyFile is not set: the controller signs assignments with it. Create one with `shoal keygen --name controller-1 --out /var/lib/secrets/shoal-controller.key` (root-only), set the option to that path and list the printed public key in every agent's trustedControllerKeys.";
      }
      {
        assertion = cfg.controllerKeyFile == null || rules.isSecretPath cfg.controllerKeyFile;
        message = ''${opt}.controllerKeyFile = "${toString cfg.controllerKeyFile}" must be an absolute path outside the Nix store (the store is world-readable), e.g. "/var/lib/secrets/shoal-controller.key".'';
      }
      {
        assertion = !singleKeyMode || rules.isSecretPath cfg.singleKeyReleaseKeyFile;
        message = ''${opt}.singleKeyReleaseKeyFile = "${toString cfg.singleKeyReleaseKeyFile}" must be an absolute path outside the Nix store (the store is world-readable), e.g. "/var/lib/secrets/shoal-release.key".'';
      }
      {
        assertion = singleKeyMode || releaseKeys != [ ];
        message = "${opt}: neither trustedReleaseKeys nor singleKeyReleaseKeyFile is set, so the controller could accept no release. List CI's release public key(s) in trustedReleaseKeys (two-key mode), or set singleKeyReleaseKeyFile for the weaker single-key mode.";
      }
      {
        assertion = rules.isUnder "/var/lib" cfg.stateDir;
        message = ''${opt}.stateDir = "${cfg.stateDir}" must be a directory below /var/lib, which systemd's StateDirectory= creates; e.g. "/var/lib/shoal-controller".'';
      }
      {
        assertion = cfg.databasePath == null || rules.isUnder cfg.stateDir cfg.databasePath;
        message = ''${opt}.databasePath = "${toString cfg.databasePath}" is outside stateDir "${cfg.stateDir}", where the hardened service cannot write; put it inside stateDir or leave it null.'';
      }
      {
        assertion = !postgres || rules.isPostgresUrl cfg.database;
        message = ''${opt}.database = "${rules.redactUrl (toString cfg.database)}" is not a postgres:// or postgresql:// URL; for SQLite leave database null and set databasePath (or nothing).'';
      }
      {
        assertion = !(postgres && cfg.databasePath != null);
        message = "${opt}.databasePath and ${opt}.database are both set: databasePath is the SQLite file, database a PostgreSQL URL; keep only one.";
      }
      {
        assertion = !(postgres && rules.hasUrlPassword cfg.database);
        message = ''${opt}.database = "${rules.redactUrl (toString cfg.database)}" carries a password, which would be written to the world-readable Nix store: remove it from the URL and put it in a root-only file named by databasePasswordFile.'';
      }
      {
        assertion = cfg.databasePasswordFile == null || rules.isSecretPath cfg.databasePasswordFile;
        message = ''${opt}.databasePasswordFile = "${toString cfg.databasePasswordFile}" must be an absolute path outside the Nix store (the store is world-readable), e.g. "/var/lib/secrets/shoal-controller-db-password".'';
      }
      {
        assertion = cfg.databasePasswordFile == null || postgres;
        message = "${opt}.databasePasswordFile is set but database is null (SQLite, which has no password): set database to the PostgreSQL URL, or remove databasePasswordFile.";
      }
      {
        assertion = !(cfg.openFirewall && lib.elem cfg.listenAddress loopbackAddresses);
        message = ''${opt}.openFirewall is set but listenAddress is "${cfg.listenAddress}", so nothing outside this host can connect; set listenAddress = "0.0.0.0" (or "::"), or leave the firewall closed and use a reverse proxy.'';
      }
      {
        assertion = cfg.settings.publicUrl == null || rules.isHttpUrl cfg.settings.publicUrl;
        message = ''${opt}.settings.publicUrl = "${toString cfg.settings.publicUrl}" has no http:// or https:// scheme; write it as e.g. "https://shoal.example.org".'';
      }
    ]
    ++ lib.concatMap (cache: [
      {
        assertion = rules.isHttpUrl cache.url;
        message = ''${opt}.binaryCaches: url "${cache.url}" has no http:// or https:// scheme; write it as e.g. "https://cache.example.org".'';
      }
      {
        assertion = cache.publicKeys != [ ] && lib.all (k: rules.isPublicKey k) cache.publicKeys;
        message = ''${opt}.binaryCaches: "${cache.url}" needs its Nix cache public keys as "name:base64" (32 bytes), the ones the hosts list in trustedPublicKeys; got [ ${lib.concatMapStringsSep " " (k: "\"${k}\"") cache.publicKeys} ].'';
      }
    ]) cfg.binaryCaches
    ++ map (key: {
      assertion = builtins.isString key && rules.isPublicKey key;
      message = ''${opt}.trustedReleaseKeys: "${toString key}" is not a public key of the form "name:base64" (32 bytes); copy the line `shoal keygen` printed for CI's release key.'';
    }) releaseKeys;

    # The controller speaks plain HTTP only; TLS belongs to a proxy in front of it.
    warnings =
      lib.optional (cfg.openFirewall && !(lib.elem cfg.listenAddress loopbackAddresses))
        "${opt}.openFirewall opens port ${toString cfg.port} to the controller's plain-HTTP listener: operator and enrollment tokens and sessions would cross the network in clear. Keep listenAddress on 127.0.0.1 behind a TLS-terminating reverse proxy and open the proxy's port instead."
      ++ lib.optional singleKeyMode "${opt}.singleKeyReleaseKeyFile is set: single-key mode: a compromised controller can install anything on every host, because it holds the release key too. Sign releases in CI instead (`shoal release sign`), list CI's key in trustedReleaseKeys and leave singleKeyReleaseKeyFile unset.";

    environment.etc."shoal/controller.json".source = configFile;
    # The operator CLI `shoal`; run `sudo -u shoal-controller shoal token create --state-dir …`
    # so database files it creates stay owned by the service user.
    environment.systemPackages = [ cfg.package ];

    users.users.${user} = {
      isSystemUser = true;
      group = user;
      home = cfg.stateDir;
      description = "Shoal controller";
    };
    users.groups.${user} = { };

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;

    systemd.services.shoal-controller = {
      description = "Shoal controller";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ lib.optional localPostgres "postgresql.service";
      after = [ "network-online.target" ] ++ lib.optional localPostgres "postgresql.service";
      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "shoal-controller"} serve --config ${configFile}";
        User = user;
        Group = user;
        Restart = "on-failure";
        RestartSec = 5;
        LoadCredential = [
          "controller-key:${toString cfg.controllerKeyFile}"
        ]
        ++ lib.optional singleKeyMode "release-key:${cfg.singleKeyReleaseKeyFile}"
        ++ lib.optional (cfg.databasePasswordFile != null) "database-password:${cfg.databasePasswordFile}";

        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0700";
        WorkingDirectory = cfg.stateDir;
        UMask = "0077";

        CapabilityBoundingSet = if privilegedPort then "CAP_NET_BIND_SERVICE" else "";
        AmbientCapabilities = if privilegedPort then "CAP_NET_BIND_SERVICE" else "";
        NoNewPrivileges = true;
        # A user namespace would drop the capability a port below 1024 needs.
        PrivateUsers = !privilegedPort;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectClock = true;
        ProtectControlGroups = true;
        ProtectHostname = true;
        ProtectKernelLogs = true;
        ProtectKernelModules = true;
        ProtectKernelTunables = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RemoveIPC = true;
        LockPersonality = true;
        # V8 compiles code at run time and needs writable-executable memory.
        MemoryDenyWriteExecute = false;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
