{
  description = "Shoal: pull-based deployment for NixOS fleets";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      # Example public keys (from `shoal keygen`); nothing is signed with them.
      releaseKey = "release-1:Rvq2yaeA0X9M6DRG0cKx+t1wMOrhSlhaJtfy7zPPmAo=";
      controllerKey = "controller-1:Y3BzZQJ7+PFoJnX7AOmA/nkpu4bCQjhW8Aw3MYgz4lU=";

      # A minimal NixOS system running one Shoal service. Any failed assertion fails the check;
      # building it builds the service's config file, which runs the service's own
      # `check-config` on it, and the package.
      moduleCheck =
        system: pkgs: service: module:
        let
          nixos = lib.nixosSystem {
            modules = [
              self.nixosModules.default
              {
                nixpkgs.hostPlatform = system;
                boot.isContainer = true;
                networking.hostName = "shoal-check";
              }
              module
            ];
          };
          inherit (nixos) config;
          failed = map (a: "- ${a.message}") (builtins.filter (a: !a.assertion) config.assertions);
        in
        if failed != [ ] then
          throw "${service} module check: failed assertions:\n${lib.concatStringsSep "\n" failed}"
        else
          pkgs.runCommand "${service}-module-check" { } ''
            echo ${lib.escapeShellArg config.systemd.services.${service}.serviceConfig.ExecStart} > $out
          '';
    in
    {
      overlays.default = final: _prev: { shoal = final.callPackage ./nixos-module/package.nix { }; };

      packages = forAllSystems (
        _system: pkgs: rec {
          shoal = pkgs.callPackage ./nixos-module/package.nix { };
          default = shoal;
        }
      );

      # The modules build the package from this checkout unless pkgs.shoal exists. A module, not
      # a bare path: `nix flake check` of older Nix (2.8) refuses a path here.
      nixosModules.default = {
        imports = [ ./nixos-module ];
      };

      checks = forAllSystems (
        system: pkgs: {
          agent-module = moduleCheck system pkgs "shoal-agent" {
            services.shoal-agent = {
              enable = true;
              controllerUrl = "https://shoal.example.org";
              trustedReleaseKeys = [ releaseKey ];
              trustedControllerKeys = [ controllerKey ];
              enrollmentTokenFile = "/run/secrets/shoal-enroll";
            };
          };
          controller-module = moduleCheck system pkgs "shoal-controller" {
            services.shoal-controller = {
              enable = true;
              controllerKeyFile = "/var/lib/secrets/shoal-controller.key";
              trustedReleaseKeys = [ releaseKey ];
              settings.publicUrl = "https://shoal.example.org";
            };
          };
        }
      );
    };
}
