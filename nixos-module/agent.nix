{
  config,
  options,
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

  # What the agent will read: the promoted options are only defaults of these fields, so an
  # override in `settings` wins, and the assertions look here.
  final = cfg.settings;
  stateDir = final.stateDir;

  isStringList = value: builtins.isList value && lib.all builtins.isString value;
  stringList = name: if isStringList (final.${name} or [ ]) then final.${name} or [ ] else [ ];

  # NixOS users put a private cache in the extra-* settings; the agent's --option substituters
  # replaces nix.conf's lists, so without these a deployment from that cache fails.
  nixSettings = config.nix.settings;
  defaultSubstituters = lib.unique (nixSettings.substituters ++ nixSettings.extra-substituters or [ ]);
  defaultTrustedPublicKeys = lib.unique (
    nixSettings.trusted-public-keys ++ nixSettings.extra-trusted-public-keys or [ ]
  );

  # networking.hostName with no definition but the option's own default: every such host would
  # report under the same name.
  hostNameLeftDefault =
    options.networking.hostName.highestPrio >= (lib.mkOptionDefault null).priority
    && final.host == config.networking.hostName;

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
      description = "URL of the Shoal controller, with its `http://` or `https://` scheme. Required unless `controllerUrls` is set.";
    };

    controllerUrls = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "https://shoal-a.example.org"
        "https://shoal-b.example.org"
      ];
      description = ''
        More controllers: replicas of one controller on a shared PostgreSQL database, reached without
        a load balancer. The agent uses `controllerUrl` first, then these in order, and moves to the
        next when the one in use refuses connections, cannot be reached or answers 502/503/504.
      '';
    };

    trustedReleaseKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "release-1:Rvq2yaeA0X9M6DRG0cKx+t1wMOrhSlhaJtfy7zPPmAo=" ];
      description = ''
        Release public keys (`name:base64`, as printed by `shoal keygen`): CI's keys, whose
        signed release statements say which system this host may run (in single-key mode,
        the controller's release key). List the old and the new key while rotating. At least
        one is required.
      '';
    };

    trustedControllerKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "controller-1:Y3BzZQJ7+PFoJnX7AOmA/nkpu4bCQjhW8Aw3MYgz4lU=" ];
      description = ''
        Controller public keys (`name:base64`), whose signed assignments say when this host
        moves to which system. The agent applies an assignment only when it verifies under one
        of these and a statement signed by a trusted release key agrees. List the old and the
        new key while rotating. At least one is required.
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
      default = defaultSubstituters;
      defaultText = literalExpression "config.nix.settings.substituters ++ config.nix.settings.extra-substituters";
      description = "Binary caches the agent pulls closures from.";
    };

    trustedPublicKeys = mkOption {
      type = types.listOf types.str;
      default = defaultTrustedPublicKeys;
      defaultText = literalExpression "config.nix.settings.trusted-public-keys ++ config.nix.settings.extra-trusted-public-keys";
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
    # mkDefault: a field set in `settings` replaces the option's value instead of conflicting
    # with it (scalars) or being appended to it (lists).
    services.shoal-agent.settings = lib.mapAttrs (_: mkDefault) (
      {
        inherit (cfg)
          trustedReleaseKeys
          trustedControllerKeys
          substituters
          trustedPublicKeys
          ;
        pollIntervalMs = cfg.pollInterval * 1000;
        healthChecks = map renderHealthCheck cfg.healthChecks;
      }
      // lib.filterAttrs (_: v: v != null) {
        inherit (cfg) controllerUrl enrollmentTokenFile action;
      }
      // lib.optionalAttrs (cfg.controllerUrls != [ ]) {
        inherit (cfg) controllerUrls;
      }
    );

    assertions =
      let
        controllerUrl = final.controllerUrl or null;
        enrollmentTokenFile = final.enrollmentTokenFile or null;
        releaseKeys = final.trustedReleaseKeys or [ ];
        controllerKeys = final.trustedControllerKeys or [ ];
      in
      [
        {
          assertion = controllerUrl != null || stringList "controllerUrls" != [ ];
          message = ''${opt}.controllerUrl is not set: set it to the controller's URL, e.g. "https://shoal.example.org" (or list several replicas in ${opt}.controllerUrls).'';
        }
        {
          assertion = controllerUrl == null || (builtins.isString controllerUrl && rules.isHttpUrl controllerUrl);
          message = ''${opt}.controllerUrl = "${toString controllerUrl}" has no http:// or https:// scheme (or no host); write it as e.g. "https://${toString controllerUrl}".'';
        }
        {
          assertion = releaseKeys != [ ];
          message = "${opt}.trustedReleaseKeys is empty, so the agent would refuse every manifest: add CI's release public key (the line `shoal keygen --name release-1 --out FILE` printed where CI's key was made; in single-key mode, the controller's release key).";
        }
        {
          assertion = controllerKeys != [ ];
          message = "${opt}.trustedControllerKeys is empty, so the agent would refuse every assignment: add the controller key's public half (the line `shoal keygen --name controller-1 --out FILE` printed for the controller's controllerKeyFile).";
        }
        {
          assertion = rules.isHostName final.host;
          message = ''${opt}.settings.host = "${final.host}" is not a valid Shoal host name (${rules.hostNameRule}); set ${opt}.settings.host (it defaults to networking.hostName).'';
        }
        {
          assertion = rules.isUnder "/var/lib" stateDir;
          message = ''${opt}.settings.stateDir = "${stateDir}" must be a directory below /var/lib, which systemd's StateDirectory= creates; e.g. "/var/lib/shoal-agent".'';
        }
      ]
      ++ map (url: {
        assertion = rules.isHttpUrl url;
        message = ''${opt}.controllerUrls: "${url}" has no http:// or https:// scheme (or no host); write it as e.g. "https://${url}".'';
      }) (stringList "controllerUrls")
      ++ map (key: {
        assertion = rules.isPublicKey key;
        message = ''${opt}.trustedReleaseKeys: "${key}" is not a public key of the form "name:base64" (32 bytes); copy the line `shoal keygen` printed.'';
      }) (stringList "trustedReleaseKeys")
      ++ map (key: {
        assertion = rules.isPublicKey key;
        message = ''${opt}.trustedControllerKeys: "${key}" is not a public key of the form "name:base64" (32 bytes); copy the line `shoal keygen` printed for the controller key.'';
      }) (stringList "trustedControllerKeys")
      ++ map (
        url:
        let
          bad = rules.forbiddenSubstituterOptions url;
        in
        {
          assertion = bad == [ ];
          message = ''${opt}.substituters: "${url}" carries ${
            lib.concatMapStringsSep ", " (o: "`${o}`") bad
          }; the agent refuses substituter options other than ${
            lib.concatMapStringsSep " and " (o: "`${o}`") rules.allowedSubstituterOptions
          }, because one such as `trusted` lets Nix install store paths no trusted key signed. Remove the query from this URL (${opt}.substituters defaults to nix.settings.substituters ++ nix.settings.extra-substituters; set it to list the agent's caches without the option).'';
        }
      ) (stringList "substituters")
      ++ map (key: {
        assertion = rules.isPublicKey key;
        message = ''${opt}.trustedPublicKeys: "${key}" is not a binary-cache public key of the form "name:base64" (32 bytes), as `nix-store --generate-binary-cache-key` writes it.'';
      }) (stringList "trustedPublicKeys")
      ++ lib.optional (enrollmentTokenFile != null) {
        assertion = builtins.isString enrollmentTokenFile && rules.isSecretPath enrollmentTokenFile;
        message = ''${opt}.enrollmentTokenFile = "${toString enrollmentTokenFile}" must be an absolute path outside the Nix store (the store is world-readable), e.g. "/run/secrets/shoal-enroll".'';
      }
      ++ lib.concatMap (
        check:
        let
          command = check.command or null;
          url = check.url or null;
          where = ''${opt}.healthChecks "${toString (check.name or "")}"'';
        in
        [
          {
            assertion = (command == null) != (url == null);
            message = "${where} must set exactly one of `command` and `url`.";
          }
          {
            assertion = command != [ ];
            message = "${where}: `command` is empty; name the program to run, e.g. [ \"/run/current-system/sw/bin/true\" ].";
          }
          {
            assertion = url == null || (builtins.isString url && rules.isHttpUrl url);
            message = ''${where}: url "${toString url}" needs an http:// or https:// scheme.'';
          }
          {
            assertion = (check.expectStatus or null) == null || url != null;
            message = "${where}: `expectStatus` only applies to `url` checks; remove it or use `url`.";
          }
        ]
      ) (lib.filter builtins.isAttrs (final.healthChecks or [ ]));

    warnings =
      lib.optional
        (builtins.isString (final.controllerUrl or null) && rules.isPlainHttpToRemote final.controllerUrl)
        ''${opt}.controllerUrl = "${final.controllerUrl}" is plain HTTP to another host: the enrollment token and the agent's session cross the network in clear. Use https:// (a TLS-terminating proxy in front of the controller).''
      ++ map (url: ''${opt}.controllerUrls: "${url}" is plain HTTP to another host: the enrollment token and the agent's session cross the network in clear. Use https:// (a TLS-terminating proxy in front of the controller).'') (
        lib.filter rules.isPlainHttpToRemote (stringList "controllerUrls")
      )
      ++ lib.optional hostNameLeftDefault ''networking.hostName is left at its default "${config.networking.hostName}", so this host reports to the Shoal controller as "${final.host}" and collides with every other host that left it too; set networking.hostName (or ${opt}.settings.host) to a name unique in the fleet.'';

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
        config.systemd.package
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
