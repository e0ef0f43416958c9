{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkOption
    types
    ;
  rules = import ./rules.nix { inherit lib; };

  cfg = config.services.shoal-agent;
  opt = "services.shoal-agent";
  settingsFormat = pkgs.formats.json { };

  # The agent's config schema is strict: unset check fields must be absent, not null.
  renderHealthCheck = check: lib.filterAttrs (_: v: v != null) check;

  renderedConfig = settingsFormat.generate "shoal-agent.json" cfg.settings;

  configFile = import ./checked-config.nix { inherit lib pkgs; } {
    name = "shoal-agent-checked.json";
    rendered = renderedConfig;
    exe = lib.getExe' cfg.package "shoal-agent";
    check = cfg.checkConfig;
  };

  stateDir = cfg.settings.stateDir;

  healthCheckType = types.submodule {
    options = {
      name = mkOption {
        type = types.str;
        description = "Name of the check, shown in reports.";
      };
      command = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = [
          "/run/current-system/sw/bin/systemctl"
          "is-active"
          "nginx.service"
        ];
        description = "Program and arguments to run; exit status 0 means healthy. Set exactly one of `command` and `url`.";
      };
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "http://127.0.0.1:80/health";
        description = "HTTP(S) URL to probe. Set exactly one of `command` and `url`.";
      };
      expectStatus = mkOption {
        type = types.nullOr (types.ints.between 100 599);
        default = null;
        description = "HTTP status the `url` must answer with (the agent's default is 200). Only for `url` checks.";
      };
      timeoutMs = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Milliseconds before the check counts as failed (the agent's default is 10000 for commands, 5000 for URLs).";
      };
    };
  };
in
{
  options.services.shoal-agent = {
    enable = mkEnableOption "the Shoal agent, which pulls this host's desired NixOS generation from a Shoal controller, activates it and rolls back when it is unhealthy";

    package = lib.mkPackageOption pkgs "shoal" { } // {
      default = pkgs.shoal or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.shoal or (pkgs.callPackage ./package.nix { })";
    };

    controllerUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://shoal.example.org";
      description = "URL of the Shoal controller, with its `http://` or `https://` scheme. Required.";
    };

    trustedReleaseKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "release-1:Rvq2yaeA0X9M6DRG0cKx+t1wMOrhSlhaJtfy7zPPmAo=" ];
      description = ''
        Public keys (`name:base64`, as printed by `shoal keygen`) whose signatures on a
        desired-generation manifest the agent accepts. List the old and the new key while
        rotating. At least one is required.
      '';
    };

    enrollmentTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/shoal-enroll";
      description = ''
        File holding a one-time enrollment token (`shoal enroll-token create`), read only
        until the host is enrolled. A path as a string, so the secret never enters the
        world-readable Nix store. Leave unset when the host's key was registered with
        `shoal host register`.
      '';
    };

    substituters = mkOption {
      type = types.listOf types.str;
      default = config.nix.settings.substituters;
      defaultText = literalExpression "config.nix.settings.substituters";
      description = "Binary caches the agent pulls closures from.";
    };

    trustedPublicKeys = mkOption {
      type = types.listOf types.str;
      default = config.nix.settings.trusted-public-keys;
      defaultText = literalExpression "config.nix.settings.trusted-public-keys";
      description = "Keys (`name:base64`) whose signatures on store paths the agent accepts from the substituters.";
    };

    pollInterval = mkOption {
      type = types.ints.positive;
      default = 30;
      description = "Seconds between manifest polls when no websocket is held (`settings.pollIntervalMs`).";
    };

    action = mkOption {
      type = types.nullOr (
        types.enum [
          "safe-switch"
          "switch"
          "boot"
          "dry-activate"
        ]
      );
      default = null;
      example = "boot";
      description = "Activation action to use on this host instead of the one in the manifest; `null` follows the manifest.";
    };

    healthChecks = mkOption {
      type = types.listOf healthCheckType;
      default = [ ];
      example = literalExpression ''
        [
          { name = "nginx"; command = [ "/run/current-system/sw/bin/systemctl" "is-active" "nginx.service" ]; }
          { name = "http"; url = "http://127.0.0.1/health"; expectStatus = 200; timeoutMs = 5000; }
        ]
      '';
      description = "Checks that must pass, after an activation, before the new generation becomes the boot default.";
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Validate the generated configuration file with `shoal-agent check-config` while
        building the system. This runs the package on the build machine, so turn it off
        when cross-compiling.
      '';
    };

    settings = mkOption {
      default = { };
      description = ''
        The agent's configuration file (JSON; see the agent's documentation for every
        field). The options above are written into it; set anything else here, e.g.
        `healthDeadlineMs`, `websocket`, `timeouts`.
      '';
      example = {
        healthDeadlineMs = 120000;
        websocket = false;
        timeouts.switchMs = 900000;
      };
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          host = mkOption {
            type = types.str;
            default = config.networking.hostName;
            defaultText = literalExpression "config.networking.hostName";
            description = "Name this host has on the controller (${rules.hostNameRule}).";
          };
          stateDir = mkOption {
            type = types.str;
            default = "/var/lib/shoal-agent";
            description = "Where the agent keeps its key, state and report outbox; must be below /var/lib.";
          };
          logLevel = mkOption {
            type = types.enum [
              "fatal"
              "error"
              "warn"
              "info"
              "debug"
              "trace"
              "silent"
            ];
            default = "info";
            description = "Log level.";
          };
        };
      };
    };
  };

  config = mkIf cfg.enable {
    services.shoal-agent.settings = {
      controllerUrl = mkIf (cfg.controllerUrl != null) cfg.controllerUrl;
      enrollmentTokenFile = mkIf (cfg.enrollmentTokenFile != null) cfg.enrollmentTokenFile;
      inherit (cfg) trustedReleaseKeys substituters trustedPublicKeys;
      pollIntervalMs = cfg.pollInterval * 1000;
      action = mkIf (cfg.action != null) cfg.action;
      healthChecks = map renderHealthCheck cfg.healthChecks;
    };

    assertions =
      [
        {
          assertion = cfg.controllerUrl != null;
          message = ''${opt}.controllerUrl is not set: set it to the controller's URL, e.g. "https://shoal.example.org".'';
        }
        {
          assertion = cfg.controllerUrl == null || rules.isHttpUrl cfg.controllerUrl;
          message = ''${opt}.controllerUrl = "${toString cfg.controllerUrl}" has no http:// or https:// scheme (or no host); write it as e.g. "https://${toString cfg.controllerUrl}".'';
        }
        {
          assertion = cfg.trustedReleaseKeys != [ ];
          message = "${opt}.trustedReleaseKeys is empty, so the agent would refuse every manifest: add the controller's release public key (the line `shoal keygen --name release-1 --out FILE` printed).";
        }
        {
          assertion = rules.isHostName cfg.settings.host;
          message = ''${opt}.settings.host = "${cfg.settings.host}" is not a valid Shoal host name (${rules.hostNameRule}); set ${opt}.settings.host (it defaults to networking.hostName).'';
        }
        {
          assertion = rules.isUnder "/var/lib" stateDir;
          message = ''${opt}.settings.stateDir = "${stateDir}" must be a directory below /var/lib, which systemd's StateDirectory= creates; e.g. "/var/lib/shoal-agent".'';
        }
      ]
      ++ map (key: {
        assertion = rules.isPublicKey key;
        message = ''${opt}.trustedReleaseKeys: "${key}" is not a public key of the form "name:base64" (32 bytes); copy the line `shoal keygen` printed.'';
      }) cfg.trustedReleaseKeys
      ++ map (key: {
        assertion = rules.isPublicKey key;
        message = ''${opt}.trustedPublicKeys: "${key}" is not a binary-cache public key of the form "name:base64" (32 bytes), as `nix-store --generate-binary-cache-key` writes it.'';
      }) cfg.trustedPublicKeys
      ++ lib.optional (cfg.enrollmentTokenFile != null) {
        assertion = rules.isSecretPath cfg.enrollmentTokenFile;
        message = ''${opt}.enrollmentTokenFile = "${cfg.enrollmentTokenFile}" must be an absolute path outside the Nix store (the store is world-readable), e.g. "/run/secrets/shoal-enroll".'';
      }
      ++ lib.concatMap (
        check:
        let
          where = ''${opt}.healthChecks "${check.name}"'';
        in
        [
          {
            assertion = (check.command == null) != (check.url == null);
            message = "${where} must set exactly one of `command` and `url`.";
          }
          {
            assertion = check.command == null || check.command != [ ];
            message = "${where}: `command` is empty; name the program to run, e.g. [ \"/run/current-system/sw/bin/true\" ].";
          }
          {
            assertion = check.url == null || rules.isHttpUrl check.url;
            message = ''${where}: url "${toString check.url}" needs an http:// or https:// scheme.'';
          }
          {
            assertion = check.expectStatus == null || check.url != null;
            message = "${where}: `expectStatus` only applies to `url` checks; remove it or use `url`.";
          }
        ]
      ) cfg.healthChecks;

    environment.etc."shoal/agent.json".source = configFile;
    environment.systemPackages = [ cfg.package ];

    systemd.services.shoal-agent = {
      description = "Shoal deployment agent";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # nix-store/nix-env to realise and commit generations; systemd-run and systemctl to
      # activate outside this unit and to check for failed units.
      path = [
        config.nix.package
        pkgs.systemd
      ];
      # The agent's own switch rewrites this unit. Restarting or stopping it then would kill
      # the deployment in flight; the new agent takes over at the next start instead.
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "shoal-agent"} run --config ${configFile}";
        # Only the agent is stopped; an activation it started keeps running.
        KillMode = "process";
        Restart = "always";
        RestartSec = 5;
        StateDirectory = lib.removePrefix "/var/lib/" stateDir;
        StateDirectoryMode = "0700";
      };
    };
  };
}
