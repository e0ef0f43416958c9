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

  # The key file stays root-only; systemd hands the service a copy it alone can read.
  releaseKeyCredential = "/run/credentials/shoal-controller.service/release-key";

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

    releaseKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/secrets/shoal-release.key";
      description = ''
        File holding the release signing key (`name:base64`, from `shoal keygen`), readable
        by root. A path as a string, so the secret never enters the Nix store; the service
        receives it as a systemd credential. Required.
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
      description = "SQLite database file; `null` means `controller.sqlite` in `stateDir`. Must be inside `stateDir`, the only place the service may write.";
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
        it; set anything else here.
      '';
      example = {
        publicUrl = "https://shoal.example.org";
        manifestTtlSeconds = 3600;
      };
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          manifestTtlSeconds = mkOption {
            type = types.ints.positive;
            default = 86400;
            description = "Seconds a signed manifest stays valid; the controller renews them before they expire.";
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
    services.shoal-controller.settings = {
      inherit listen;
      inherit (cfg) stateDir;
      db = cfg.databasePath;
      releaseKeyFile = releaseKeyCredential;
    };

    assertions = [
      {
        assertion = cfg.releaseKeyFile != null;
        message = "${opt}.releaseKeyFile is not set: the controller signs manifests with it. Create one with `shoal keygen --name release-1 --out /var/lib/secrets/shoal-release.key` and set the option to that path.";
      }
      {
        assertion = cfg.releaseKeyFile == null || rules.isSecretPath cfg.releaseKeyFile;
        message = ''${opt}.releaseKeyFile = "${toString cfg.releaseKeyFile}" must be an absolute path outside the Nix store (the store is world-readable), e.g. "/var/lib/secrets/shoal-release.key".'';
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
        assertion = !(cfg.openFirewall && lib.elem cfg.listenAddress loopbackAddresses);
        message = ''${opt}.openFirewall is set but listenAddress is "${cfg.listenAddress}", so nothing outside this host can connect; set listenAddress = "0.0.0.0" (or "::"), or leave the firewall closed and use a reverse proxy.'';
      }
      {
        assertion = cfg.settings.publicUrl == null || rules.isHttpUrl cfg.settings.publicUrl;
        message = ''${opt}.settings.publicUrl = "${toString cfg.settings.publicUrl}" has no http:// or https:// scheme; write it as e.g. "https://shoal.example.org".'';
      }
    ];

    # The controller speaks plain HTTP only; TLS belongs to a proxy in front of it.
    warnings =
      lib.optional (cfg.openFirewall && !(lib.elem cfg.listenAddress loopbackAddresses))
        "${opt}.openFirewall opens port ${toString cfg.port} to the controller's plain-HTTP listener: operator and enrollment tokens and sessions would cross the network in clear. Keep listenAddress on 127.0.0.1 behind a TLS-terminating reverse proxy and open the proxy's port instead.";

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
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "shoal-controller"} serve --config ${configFile}";
        User = user;
        Group = user;
        Restart = "on-failure";
        RestartSec = 5;
        LoadCredential = "release-key:${toString cfg.releaseKeyFile}";

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
