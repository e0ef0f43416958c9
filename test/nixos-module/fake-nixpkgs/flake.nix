# Stands in for nixpkgs when the tests run `nix flake check` on the repository's flake (no
# nixpkgs checkout here): nixpkgs' real lib, with nixosSystem evaluating the stub NixOS option
# declarations and the stub pkgs. The test copies ../stubs next to this file and overrides the
# `nixpkgs-lib` input with NIXPKGS_LIB.
{
  inputs.nixpkgs-lib.url = "github:nix-community/nixpkgs.lib";

  outputs =
    { self, nixpkgs-lib }:
    let
      inherit (nixpkgs-lib) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      pkgsFor =
        system:
        let
          pkgs = import ./stubs/pkgs.nix { inherit lib system; };
        in
        # Only the flake's `packages` output calls it; flake check evaluates, never builds.
        pkgs // { callPackage = _path: _args: pkgs.shoal; };

      # The options NixOS has that the flake's checks set, beyond what the Shoal modules set.
      checkOptions = {
        options.nixpkgs.hostPlatform = lib.mkOption { type = lib.types.str; };
        options.boot.isContainer = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
      };
    in
    {
      lib = lib // {
        nixosSystem =
          { modules, ... }:
          lib.evalModules {
            modules = [
              checkOptions
              ./stubs/nixos-options.nix
              (
                { config, ... }:
                {
                  _module.args.pkgs = pkgsFor config.nixpkgs.hostPlatform;
                }
              )
            ] ++ modules;
          };
      };
      legacyPackages = lib.genAttrs systems pkgsFor;
    };
}
