# Declarations of the NixOS options the Shoal modules set, with NixOS's names, types and
# defaults but nothing behind them. No freeform types: setting an option NixOS does not
# have (a misspelt `restartIfchanged`) fails the evaluation as it would on a real system.
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;

  # What NixOS accepts for a systemd directive: a scalar or a list of scalars.
  unitScalar = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
  ];
  unitValue = types.either unitScalar (types.listOf unitScalar);

  unitList = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };

  serviceType = types.submodule {
    options = {
      description = mkOption {
        type = types.str;
        default = "";
      };
      wantedBy = unitList;
      requiredBy = unitList;
      wants = unitList;
      requires = unitList;
      after = unitList;
      before = unitList;
      path = mkOption {
        type = types.listOf (types.either types.package types.str);
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      stopIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      unitConfig = mkOption {
        type = types.attrsOf unitValue;
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitValue;
        default = { };
      };
    };
  };

  userType = types.submodule {
    options = {
      isSystemUser = mkOption {
        type = types.bool;
        default = false;
      };
      isNormalUser = mkOption {
        type = types.bool;
        default = false;
      };
      group = mkOption {
        type = types.str;
        default = "";
      };
      home = mkOption {
        type = types.str;
        default = "/var/empty";
      };
      createHome = mkOption {
        type = types.bool;
        default = false;
      };
      description = mkOption {
        type = types.str;
        default = "";
      };
    };
  };

  etcType = types.submodule {
    options = {
      source = mkOption { type = types.path; };
      mode = mkOption {
        type = types.str;
        default = "symlink";
      };
    };
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf (
        types.submodule {
          options = {
            assertion = mkOption { type = types.bool; };
            message = mkOption { type = types.str; };
          };
        }
      );
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    systemd.package = mkOption {
      type = types.package;
      default = pkgs.systemd;
    };
    systemd.services = mkOption {
      type = types.attrsOf serviceType;
      default = { };
    };

    users.users = mkOption {
      type = types.attrsOf userType;
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { options.gid = mkOption { type = types.nullOr types.int; default = null; }; });
      default = { };
    };

    networking.hostName = mkOption {
      type = types.str;
      default = "nixos";
    };
    networking.firewall.allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
    };

    environment.etc = mkOption {
      type = types.attrsOf etcType;
      default = { };
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };

    services.postgresql.enable = mkOption {
      type = types.bool;
      default = false;
    };

    nix.package = mkOption {
      type = types.package;
      default = pkgs.nix;
    };
    nix.settings = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf types.anything;
        options = {
          substituters = mkOption { type = types.listOf types.str; };
          trusted-public-keys = mkOption {
            type = types.listOf types.str;
            default = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
          };
        };
      };
      default = { };
    };
  };

  # As nixos/modules/config/nix.nix does.
  config.nix.settings.substituters = lib.mkAfter [ "https://cache.nixos.org/" ];
}
