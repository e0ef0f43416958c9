# The fleet lab as CI sees a fleet: a flake whose nixosConfigurations.<host>.config.system.build.toplevel
# are lab systems (systems.nix, built by real Nix). No inputs, so evaluation needs no network.
# Pure evaluation cannot ask for the machine's system or its ip(8), so flake-hosts.json names them;
# tests write their own copy of this directory with their hosts (lab-flake.ts).
{
  description = "Shoal fleet lab systems";

  outputs =
    { self }:
    let
      lab = builtins.fromJSON (builtins.readFile ./flake-hosts.json);
      systems = import ./systems.nix {
        inherit (lab) system;
        spec = {
          inherit (lab) ipCommand;
          systems = map (name: { inherit name; } // lab.hosts.${name}) (builtins.attrNames lab.hosts);
        };
      };
    in
    {
      # Only the part of a NixOS configuration that deployment tools read.
      nixosConfigurations = builtins.mapAttrs (name: _: { config.system.build.toplevel = systems.${name}; }) lab.hosts;
    };
}
