{
  description = "Shoal: pull-based deployment for NixOS fleets";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: { shoal = final.callPackage ./nixos-module/package.nix { }; };

      packages = forAllSystems (pkgs: rec {
        shoal = pkgs.callPackage ./nixos-module/package.nix { };
        default = shoal;
      });

      # The modules build the package from this checkout unless pkgs.shoal exists.
      nixosModules.default = ./nixos-module;
    };
}
